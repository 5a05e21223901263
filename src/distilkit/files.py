"""What distilkit writes and how: atomic files, valid JSON, ownership markers, run locks, write failures.

Four rules live here, so every command follows them the same way:

- **Atomic, readable files.** A file is written to a temp file beside it and renamed into place; the temp file
  is removed when writing fails; the result gets the permissions the umask allows (as `open()` would give), so a
  service account may serve a model another user trained.
- **Valid JSON only.** NaN and infinities are not JSON; they are written as `null` (`finite_json`).
- **Ownership by proof, never by look.** Every folder distilkit writes holds a `.distilkit` marker, and the
  marker lists the files distilkit wrote there. A folder without the marker, or one holding a file the list does
  not name (a user's `thesis.tex` put into a run folder), is never deleted: `check_replaceable` refuses it.
- **One process per output.** A run in progress holds an OS lock (flock) on its folder; the lock dies with the
  process, so a killed run leaves an unlocked folder and a live one is told apart from a dead one
  (`FolderLock`, `live_holder`).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

import yaml

from distilkit.budget import free_bytes, human
from distilkit.errors import DistilkitError

MARKER = ".distilkit"


# ---- atomic, readable files ----------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write a text (or, given bytes, binary) file via a temp file + rename, so readers never see half a file; on
    failure (a full disk) the temp file is removed and the old file, if any, is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") if isinstance(text, bytes) else os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; open() would have followed the umask
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError) and err.filename is None:  # a failed write() names no file: name ours
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


def finite_json(obj):
    """`obj` with every NaN or infinite float replaced by None, so that `json.dumps` writes valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def json_text(obj, **options) -> str:
    """JSON that any parser reads: non-finite numbers as null, other objects (paths) as text."""
    return json.dumps(finite_json(obj), allow_nan=False, default=str, **options)


def write_json(path: Path, obj) -> None:
    write_atomic(path, json_text(obj, indent=2) + "\n")


def write_yaml(path: Path, obj) -> None:
    write_atomic(path, yaml.safe_dump(obj, sort_keys=False))


def folder_bytes(folder: Path) -> int:
    """Total size of the files under `folder`."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


# ---- markers and ownership ---------------------------------------------------------------------------------------


def read_marker(folder: Path) -> dict | None:
    """The marker of a folder distilkit wrote, or None."""
    try:
        meta = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("written_by") == "distilkit" else None


def marker_kind(folder: Path) -> str | None:
    """What distilkit wrote into `folder` ("run", "pipeline", "evaluation", ...), or None."""
    return (read_marker(folder) or {}).get("kind")


def mark(folder: Path, kind: str) -> None:
    """Label `folder` as distilkit's own output of `kind`, with the process writing it (named when another
    process finds the folder locked). The list of files written comes at the end (`record_files`)."""
    from distilkit import __version__

    old = read_marker(folder) or {}
    meta = {
        "written_by": "distilkit",
        "version": __version__,
        "kind": kind,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if "files" in old:
        meta["files"] = old["files"]
    write_json(Path(folder) / MARKER, meta)


def listing(folder: Path) -> list[str]:
    """Every file under `folder` (links included) as a path relative to it, the marker itself left out."""
    folder = Path(folder)
    found = (p for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    return sorted(p.relative_to(folder).as_posix() for p in found if p.name != MARKER or p.parent != folder)


def record_files(folder: Path, new_since: set[str] | None = None) -> None:
    """Write into the marker the files distilkit wrote in `folder`: all of them, or with `new_since` (the listing
    before a step) the ones listed already plus those that appeared since."""
    meta = read_marker(folder)
    if meta is None:
        return
    now = listing(folder)
    if new_since is None:
        files = now
    else:
        files = sorted((set(meta.get("files") or []) & set(now)) | (set(now) - new_since))
    write_json(Path(folder) / MARKER, {**meta, "files": files})


def foreign_files(folder: Path) -> list[str]:
    """Files in `folder` that distilkit did not write there: all of them without a marker, else those its
    marker's list does not name (a marker without a list, from an older distilkit, vouches for the folder)."""
    meta = read_marker(folder)
    present = listing(folder)
    if meta is None:
        return present
    if meta.get("files") is None:
        return []
    known = set(meta["files"])
    return [f for f in present if f not in known and not _ours_anyway(f)]


TEMP_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # what write_atomic's mkstemp names look like


def _ours_anyway(relative: str) -> bool:
    """Files distilkit leaves in its folders between listings: temp files of its atomic writes."""
    return bool(TEMP_FILE.match(relative.rsplit("/", 1)[-1]))


def check_replaceable(path: Path, option: str = "--output") -> None:
    """Refuse to replace anything distilkit did not write: a file, a non-empty folder without the marker, or a
    marked folder holding files its marker does not list."""
    path = Path(path)
    if path.is_file() or path.is_symlink():
        raise DistilkitError(
            f"{option} {path}: a file is there, not a folder distilkit wrote; move it away or choose another {option}"
        )
    if not path.is_dir() or not any(path.iterdir()):
        return
    if read_marker(path) is None:
        raise DistilkitError(
            f"{option} {path}: this folder was not written by distilkit (no {MARKER} marker), so "
            f"--overwrite will not delete it; move it away or choose another {option}"
        )
    foreign = foreign_files(path)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise DistilkitError(
            f"{option} {path}: holds files distilkit did not write ({shown}), so --overwrite will not delete it; "
            f"move them away or choose another {option}"
        )


def check_writable_folder(path: Path, kind: str, option: str = "--output") -> None:
    """A folder a command adds its files to (evaluate, report, search): new, empty, or distilkit's own of `kind`;
    never a user's folder, which the marker would otherwise claim for distilkit."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DistilkitError(f"{option} {path}: a file is there; give a folder")
    if path.is_dir() and any(path.iterdir()) and read_marker(path) is None:
        raise DistilkitError(
            f"{option} {path}: this folder was not written by distilkit (no {MARKER} marker); distilkit writes "
            f"only into new or empty folders or its own: choose another {option}, e.g. {path / kind}"
        )


def remove_output(path: Path, option: str = "--output") -> None:
    """Delete a previous distilkit output (after checking it is one and no process is writing it)."""
    check_replaceable(path, option)
    holder = live_holder(path)
    if holder:
        raise DistilkitError(
            f"{option} {path}: {holder} is writing it; wait for it to finish or choose another {option}"
        )
    if Path(path).exists():
        shutil.rmtree(path)


# ---- locks ---------------------------------------------------------------------------------------------------


class FolderLock:
    """An exclusive flock on a folder, held while this object lives (or until `release`). The OS drops it when
    the process dies, so a folder left by a killed run is never mistaken for a live one."""

    def __init__(self, folder: Path):
        self.folder, self.fd = Path(folder), None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process (or another FolderLock) holds it."""
        try:
            import fcntl
        except ImportError:  # no flock (Windows): runs are not locked
            return True
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = None

    def __del__(self):
        self.release()


def live_holder(folder: Path) -> str | None:
    """Who is writing `folder` right now ("process 123 on host, since ..."), or None when nobody is."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    probe = FolderLock(folder)
    if probe.acquire():
        probe.release()
        return None
    meta = read_marker(folder) or {}
    who = f"process {meta['pid']} on {meta.get('host', '?')}" if meta.get("pid") else "another process"
    return who + (f" (since {meta['started']})" if meta.get("started") else "")


# ---- write failures --------------------------------------------------------------------------------------------

# errno values that mean "the place cannot take the write", whatever the file
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
# how libraries that write through their own code say the same (torch's zip writer and its C++ streams,
# safetensors' Rust)
FULL_DISK_TEXTS = (
    "No space left",
    "unexpected pos",
    "file write failed",
    "iostream error",
    "StorageFull",
    "Disk quota exceeded",
)
NEARLY_FULL = 1 << 20  # bytes: a disk with less free than this, where an error came from, is a full disk


def write_failure(err: BaseException, where: Path | None = None) -> str | None:
    """Why writing failed, when `err` (or what caused it) is a failed write: "No space left on device", ...;
    None for other errors. With `where` (the folder being written), any error while its disk is (nearly) full
    counts: libraries word a failed write in ways no list can hold."""
    if where is not None and (free_bytes(where)[1] or NEARLY_FULL) < NEARLY_FULL:
        return os.strerror(errno.ENOSPC)
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
            return os.strerror(err.errno)
        if any(text in str(err) for text in FULL_DISK_TEXTS):
            return os.strerror(errno.ENOSPC)
        err = err.__cause__ or err.__context__
    return None


def free_space(path: Path) -> str:
    """Free space on the file system of `path` (or of the nearest existing folder above it), for messages."""
    free = free_bytes(path)[1]
    return "unknown" if free is None else human(free)


def write_error(err: BaseException, where: Path, option: str = "--output") -> DistilkitError:
    """The one line for a write that failed under `where` (the file when the error names one)."""
    reason = write_failure(err, where) or getattr(err, "strerror", None) or str(err)
    target = getattr(err, "filename", None) or where
    return DistilkitError(
        f"cannot write {target}: {reason} ({free_space(Path(where))} free there); nothing was kept: free some space "
        f"or choose another {option}"
    )
