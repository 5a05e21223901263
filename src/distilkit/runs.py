"""Run folders: written atomically, never overwritten by accident, resumable after a crash.

A run is built in a hidden sibling `.<name>.partial/` (Trainer checkpoints live there too) and renamed to
`<name>/` only when complete. So `runs/x/` either holds a finished run or does not exist:
- a finished `runs/x/` is replaced only with `--overwrite`;
- an interrupted `.x.partial/` is continued with `--resume` (from its last checkpoint) or discarded with
  `--overwrite`; a run that fails on bad input removes its partial folder.

Every folder distilkit writes holds a marker file (`.distilkit`). `--overwrite` replaces only such folders (or
runs written before the marker existed, recognised by their config.yaml + metrics.json): a folder distilkit did
not write is never deleted. `--resume` continues only with the options the run was started with (see
`RESUME_FREE` for the ones that may change).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import yaml

from distilkit.errors import DistilkitError


def write_atomic(path: Path, text: str) -> None:
    """Write a text file via a temp file + rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def folder_bytes(folder: Path) -> int:
    """Total size of the files under `folder`."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def write_json(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_yaml(path: Path, obj) -> None:
    write_atomic(path, yaml.safe_dump(obj, sort_keys=False))


MARKER = ".distilkit"
# Options that may differ when a run is resumed: they change how it is run or logged, not what it computes.
RESUME_FREE = {
    "resume",
    "overwrite",
    "threads",
    "logging_steps",
    "eval_batch_size",
    "cache",
    "cache_dir",
    "cache_max_gb",
    "force",
}
DATA_FILE_KEYS = ("data", "train_file", "dev_file", "test_file", "unlabeled")


def mark(folder: Path, kind: str) -> None:
    """Label `folder` as distilkit's own output, so a later --overwrite may replace it."""
    from distilkit import __version__

    write_json(Path(folder) / MARKER, {"written_by": "distilkit", "version": __version__, "kind": kind})


def marker_kind(folder: Path) -> str | None:
    """What distilkit wrote into `folder` ("run", "pipeline", "evaluation", ...), or None."""
    try:
        return json.loads((Path(folder) / MARKER).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def check_new_file(path: Path, overwrite: bool, option: str = "--output", inputs: tuple = ()) -> None:
    """An output file may replace an existing file only with --overwrite, and never one of the command's inputs."""
    path = Path(path)
    for source in inputs:
        if source and Path(source).exists() and path.exists() and path.resolve() == Path(source).resolve():
            raise DistilkitError(f"{option} {path}: that is the input file; write the output somewhere else")
    if path.is_dir():
        raise DistilkitError(f"{option} {path}: a folder is there; give a file name")
    if path.exists() and not overwrite:
        raise DistilkitError(
            f"{option} {path}: the file exists; pass --overwrite to replace it or choose another {option}"
        )


def written_by_distilkit(folder: Path) -> bool:
    """A distilkit output: the marker, or the layout of a run written before markers existed."""
    folder = Path(folder)
    legacy = (
        ((folder / "config.yaml").is_file() and (folder / "metrics.json").is_file())
        or (folder / "distilkit_onnx.json").is_file()
        or (folder / "stages.json").is_file()
    )
    return folder.is_dir() and ((folder / MARKER).is_file() or legacy)


def check_replaceable(path: Path, option: str = "--output") -> None:
    """Refuse to replace anything distilkit did not write: a file, or a non-empty folder without the marker."""
    path = Path(path)
    if path.is_file() or path.is_symlink():
        raise DistilkitError(
            f"{option} {path}: a file is there, not a folder distilkit wrote; move it away or choose another {option}"
        )
    if path.is_dir() and any(path.iterdir()) and not written_by_distilkit(path):
        raise DistilkitError(
            f"{option} {path}: this folder was not written by distilkit (no {MARKER} marker), so "
            f"--overwrite will not delete it; move it away or choose another {option}"
        )


def remove_output(path: Path, option: str = "--output") -> None:
    """Delete a previous distilkit output (after checking it is one)."""
    check_replaceable(path, option)
    if Path(path).exists():
        shutil.rmtree(path)


def _cannot_create(folder: Path, option: str, reason: object) -> DistilkitError:
    """The one error line of make_folder and check_creatable."""
    return DistilkitError(f"{option}: cannot create {folder} ({reason}); choose a folder you can write")


def make_folder(folder: Path, option: str = "--output") -> None:
    """mkdir -p with one clear line when the place cannot be written (permissions, a file in the way)."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _cannot_create(folder, option, err.strerror or err) from None


def check_creatable(folder: Path, option: str = "--output") -> None:
    """Refuse, creating nothing, a folder that make_folder could not create: the nearest existing place above it
    must be a folder this process can write (a file in the way, or no permission, would only fail later)."""
    above = Path(folder).absolute().parent
    while not above.exists() and above != above.parent:
        above = above.parent
    reason = "Not a directory" if not above.is_dir() else None
    if reason is None and not os.access(above, os.W_OK | os.X_OK):
        reason = "Permission denied"
    if reason:
        raise _cannot_create(folder, option, reason)


def _file_digest(path: Path) -> str:
    stat = path.stat()  # size and mtime in the key: a file changed since the last call is read again
    return _digest_of(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _digest_of(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, once per process (--intermediate-from checks the data files, then the run records them)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resume_fingerprint(options: dict) -> dict:
    """The options a checkpoint depends on, plus the contents (sha256) of the data files they name."""
    kept = {k: v for k, v in options.items() if k not in RESUME_FREE}
    for key in DATA_FILE_KEYS:
        value = options.get(key)
        if isinstance(value, str) and Path(value).is_file():
            kept[f"{key} (contents)"] = _file_digest(Path(value))
    return json.loads(json.dumps(kept, default=str))


def option_changes(saved: dict, now: dict) -> str | None:
    """How two recorded option sets (resume_fingerprint's) differ, as one clause of an error line: the first
    difference in full, the others by name ("--seed was 42, now 7; also changed: lr"); None when they agree."""
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if not changed:
        return None
    first = changed[0]
    if "(contents)" in first:
        detail = f"the file of --{first.split()[0].replace('_', '-')} changed"
    else:  # a key with a space is a derived value, not an option (reuse's "intermediate epochs")
        name = first.replace("_", "-") if " " in first else f"--{first.replace('_', '-')}"
        detail = f"{name} was {saved.get(first)!r}, now {now.get(first)!r}"
    return detail + (f"; also changed: {', '.join(changed[1:])}" if changed[1:] else "")


class RunFolder:
    """The life cycle of one run folder: prepare → (train in `work`) → finish, or abort on bad input."""

    def __init__(self, output: str, overwrite: bool = False, resume: bool = False):
        self.final = Path(output)
        self.work = self.final.parent / f".{self.final.name}.partial"
        self.overwrite, self.resume = overwrite, resume

    def check(self, options: dict | None = None) -> None:
        """Refuse to clobber a finished run, or to silently restart an interrupted one; with `options`, refuse to
        resume one started with others (see `check_resume`). Creates nothing, so it runs before any slow work."""
        if self.final.exists() and not self.final.is_dir():
            raise DistilkitError(f"--output {self.final}: a file is there, not a folder; choose another --output")
        if self.final.exists() and any(self.final.iterdir()):
            if not self.overwrite:
                raise DistilkitError(
                    f"{self.final}: a run folder is already there; pass --overwrite to replace it or "
                    "choose another --output"
                )
            check_replaceable(self.final)
        if self.work.exists() and not (self.resume or self.overwrite):
            raise DistilkitError(
                f"{self.work}: an interrupted run of {self.final} is there; pass --resume to continue it "
                "or --overwrite to start again"
            )
        if options is not None and self.resume and self.work.exists():
            self.check_resume(options)
        check_creatable(self.work)

    def prepare(self, options: dict | None = None) -> Path:
        """Create (or, with --resume, reopen) the partial folder. With `options`, a resumed run must have been
        started with the same ones (see `check_resume`)."""
        self.check(options)
        if self.work.exists() and self.overwrite and not self.resume:
            shutil.rmtree(self.work)
        resuming = self.resume and self.work.exists()
        make_folder(self.work)
        mark(self.work, "run")
        if options is not None and not resuming:
            write_json(self.work / "resume-options.json", resume_fingerprint(options))
        return self.work

    def check_resume(self, options: dict) -> None:
        """Refuse to continue a checkpoint with other data, model or training options: its weights would not be
        what the run folder says."""
        saved_file = self.work / "resume-options.json"
        if not saved_file.exists():
            return  # interrupted before options were recorded (or by an older distilkit): nothing to compare
        changes = option_changes(json.loads(saved_file.read_text()), resume_fingerprint(options))
        if changes:
            raise DistilkitError(
                f"--resume {self.final}: the interrupted run was started with other options ({changes}); resume "
                "with the same options, or pass --overwrite to start again"
            )

    def write_results(self, metrics: dict, config: dict) -> None:
        """metrics.json and the resolved config.yaml: the last files written before `finish`."""
        write_json(self.work / "metrics.json", metrics)
        write_yaml(self.work / "config.yaml", config)

    def last_checkpoint(self, folder: Path | None = None) -> str | None:
        """The newest Trainer checkpoint in `folder` (default: the run's checkpoints/)."""
        folder = folder or self.work / "checkpoints"
        ckpts = sorted(
            (p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
            key=lambda p: int(p.name.split("-")[-1]),
        )
        return str(ckpts[-1]) if ckpts else None

    def finish(self) -> Path:
        """Drop checkpoints and move the finished run into place (replacing an old one only when allowed)."""
        shutil.rmtree(self.work / "checkpoints", ignore_errors=True)
        if self.final.exists():
            trash = self.final.parent / f".{self.final.name}.old"
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(self.final, trash)
            os.replace(self.work, self.final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(self.work, self.final)
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
