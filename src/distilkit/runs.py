"""Run folders: written atomically, never overwritten by accident, locked while written, resumable after a crash.

A run is built in a hidden sibling `.<name>.partial/` (Trainer checkpoints live there too) and renamed to
`<name>/` only when complete. So `runs/x/` either holds a finished run or does not exist:
- a finished `runs/x/` is replaced only with `--overwrite`, and only when distilkit's marker proves it wrote every
  file there (files.py: `check_replaceable`);
- the process writing `.x.partial/` holds a lock on it, so a second process on the same `--output` is told which
  process is writing it, and `--overwrite` never removes a live run;
- an interrupted `.x.partial/` (its process gone) is continued with `--resume` (from its last checkpoint) or
  discarded with `--overwrite`; commands that cannot resume (export, quantize, prune) discard it themselves;
- a run that fails removes its partial folder: on bad input, a failed write (a full disk: one line naming the path)
  or an error in the user's code; only Ctrl-C, and a crash after a checkpoint was saved, keep it for `--resume`.

`--resume` continues only with the options the run was started with (see `RESUME_FREE` for the ones that may
change).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import NoReturn

from distilkit.errors import DistilkitError
from distilkit.files import (
    MARKER,
    FolderLock,
    check_replaceable,
    live_holder,
    mark,
    read_marker,
    record_files,
    write_error,
    write_failure,
    write_json,
    write_yaml,
)

# Options that may differ when a run is resumed: they change how it is run or logged, not what it computes.
RESUME_FREE = {
    "resume",
    "overwrite",
    "threads",
    "logging_steps",
    "report_to",
    "eval_batch_size",
    "cache",
    "cache_dir",
    "cache_max_gb",
    "force",
    "keep_data_sample",
}
DATA_FILE_KEYS = ("data", "train_file", "dev_file", "test_file", "unlabeled")


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
    check_creatable(path, option)


def is_run_folder(path: Path) -> bool:
    """A training run folder: its model lives in `model/` (the folder has no config.json of its own)."""
    return (path / "model").is_dir() and not (path / "config.json").exists()


def model_folder_of(path: Path) -> Path:
    """The model folder `path` names: a run folder's `model/`, else `path` itself."""
    return path / "model" if is_run_folder(path) else path


def written_by_distilkit(folder: Path) -> bool:
    """Recognise a distilkit output for reading (is this a run folder?): the marker, or the layout of a run written
    before markers existed. Never a reason to delete anything: that takes `check_replaceable`'s proof."""
    folder = Path(folder)
    legacy = (
        ((folder / "config.yaml").is_file() and (folder / "metrics.json").is_file())
        or (folder / "distilkit_onnx.json").is_file()
        or (folder / "stages.json").is_file()
    )
    return folder.is_dir() and ((folder / MARKER).is_file() or legacy)


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
    """The life cycle of one run folder: check → prepare → (work in `work`) → finish; on failure `fail`.

    `resumable`: the command has --resume (finetune, distill). Other commands (export, quantize, prune, merge) cannot
    continue an interrupted folder, so they discard one left by a process that is gone instead of advising --resume.
    `what` names the command's output in messages ("run", "export", ...).
    """

    def __init__(
        self, output: str, overwrite: bool = False, resume: bool = False, resumable: bool = True, what: str = "run"
    ):
        self.final = Path(output)
        self.work = self.final.parent / f".{self.final.name}.partial"
        self.overwrite, self.resume, self.resumable, self.what = overwrite, resume, resumable, what
        self.lock: FolderLock | None = None

    def check(self, options: dict | None = None) -> None:
        """Refuse to clobber a finished run or a live one, or to silently restart an interrupted one; with
        `options`, refuse to resume one started with others (see `check_resume`). Creates nothing, so it runs
        before any slow work."""
        if self.final.exists() and not self.final.is_dir():
            raise DistilkitError(f"--output {self.final}: a file is there, not a folder; choose another --output")
        for folder in (self.work, self.final):
            holder = live_holder(folder) if not (self.lock and folder == self.work) else None
            if holder:
                raise DistilkitError(
                    f"--output {self.final}: {holder} is writing this {self.what} right now ({folder}); wait for it "
                    "to finish or choose another --output (--overwrite never removes a live run)"
                )
        if self.final.exists() and any(self.final.iterdir()):
            if not self.overwrite:
                raise DistilkitError(
                    f"{self.final}: a {self.what} folder is already there; pass --overwrite to replace it or "
                    "choose another --output"
                )
            check_replaceable(self.final)
        if self.work.exists() and self.lock is None:
            self.check_leftover(options)
        check_creatable(self.work)

    def check_leftover(self, options: dict | None) -> None:
        """An unlocked partial folder: what an interrupted run (its process gone) left."""
        if read_marker(self.work) is None:  # not distilkit's: never removed, never written into
            check_replaceable(self.work, "--output (its partial folder)")
        if not self.resumable:
            return  # prepare discards it: there is nothing to continue
        if not (self.resume or self.overwrite):
            raise DistilkitError(
                f"{self.work}: an interrupted run of {self.final} is there; pass --resume to continue it "
                "or --overwrite to start again"
            )
        if options is not None and self.resume:
            self.check_resume(options)

    def prepare(self, options: dict | None = None) -> Path:
        """Create (or, with --resume, reopen) the partial folder and lock it. With `options`, a resumed run must
        have been started with the same ones (see `check_resume`)."""
        self.check(options)
        if self.work.exists() and (not self.resumable or (self.overwrite and not self.resume)):
            self.discard_leftover()
            if not self.resumable:
                print(f"note: removed {self.work}, left by an interrupted {self.what}: starting again")
        resuming = self.resume and self.work.exists()
        make_folder(self.work)
        self.lock = FolderLock(self.work)
        if not self.lock.acquire():  # another process got here between check and now
            self.lock = None
            raise DistilkitError(
                f"--output {self.final}: {live_holder(self.work) or 'another process'} is writing this {self.what} "
                "right now; wait for it to finish or choose another --output"
            )
        try:
            mark(self.work, self.what)
            if options is not None and not resuming:
                write_json(self.work / "resume-options.json", resume_fingerprint(options))
        except BaseException as err:  # a disk that is full before the first file
            self.fail(err)
        return self.work

    def discard_leftover(self) -> None:
        """Remove an interrupted run's partial folder, holding its lock meanwhile so no other process starts in it."""
        lock = FolderLock(self.work)
        if not lock.acquire():
            raise DistilkitError(
                f"--output {self.final}: {live_holder(self.work)} is writing this {self.what} right now"
            )
        shutil.rmtree(self.work)
        lock.release()

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
            (p for p in folder.rglob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
            key=lambda p: int(p.name.split("-")[-1]),
        )
        return str(ckpts[-1]) if ckpts else None

    def finish(self) -> Path:
        """Drop checkpoints, list the files written in the marker, and move the finished run into place
        (replacing an old one only when allowed, checked again: hours may have passed since `check`)."""
        shutil.rmtree(self.work / "checkpoints", ignore_errors=True)
        record_files(self.work)
        if self.final.exists():
            check_replaceable(self.final)
            trash = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.old-", dir=self.final.parent))
            os.replace(self.final, trash)  # onto the new empty folder: a name no one else uses
            os.replace(self.work, self.final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(self.work, self.final)
        self.release()
        return self.final

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def abort(self) -> None:
        """Remove the partial folder (this process's own work)."""
        shutil.rmtree(self.work, ignore_errors=True)
        self.release()

    def fail(self, err: BaseException) -> NoReturn:
        """Clean up after `err` ended the run, then raise: DistilkitError as it is; a failed write (a full disk) or
        another OS error, and running out of memory, as one line; Ctrl-C keeps the partial folder for --resume, and
        so does a crash after a checkpoint was saved; anything else removes it and is raised as it is."""
        if isinstance(err, KeyboardInterrupt) and self.resumable:
            self.release()
            raise err
        if isinstance(err, (KeyboardInterrupt, DistilkitError)):
            self.abort()
            raise err
        if write_failure(err, self.work) or isinstance(err, OSError):
            failed = write_error(err, self.work) if write_failure(err, self.work) else os_error(err, self.work)
            self.abort()  # after the line is made: it says how full the disk was
            raise failed from err
        if isinstance(err, MemoryError):
            self.abort()
            raise DistilkitError(
                f"{self.final}: out of memory; nothing was kept: use a smaller --batch-size or --max-length, "
                "fewer examples, or a machine with more memory"
            ) from err
        checkpoint = self.last_checkpoint() if self.resumable and self.work.exists() else None
        if checkpoint:
            self.release()
            print(f"note: {self.work} keeps {Path(checkpoint).name}: --resume continues from it once this is fixed")
        else:
            self.abort()
        raise err


def os_error(err: OSError, where: Path) -> DistilkitError:
    """One line for an OS error that is not a failed write (a permission, a file that went away)."""
    target = err.filename or where
    return DistilkitError(f"{target}: {err.strerror or err}; nothing was kept")
