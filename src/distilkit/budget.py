"""Work whose size the user decides (augmentation copies, a transfer set, a corpus, a data file) is estimated before
it starts, and refused with the estimate when it cannot fit in the memory or on the disk that is left.

Without this, `--augment 100000` grows memory until the process dies (a MemoryError traceback under a memory cap,
the OOM killer without one) after minutes of work. The estimates are deliberately on the high side (measured
bytes per row, see distillation/augmentation.py), and the check keeps a fifth of the memory for the models and training.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from distilkit.errors import DistilkitError

HEADROOM = 0.8  # of the available memory, what one estimated piece of work may take


def human(size: float) -> str:
    """Bytes for people: 1.2 GB, 35.0 MB, 812 bytes."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} bytes"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    """What the process's cgroup (v2, else v1) still allows, when it sets a limit (containers, systemd-run)."""
    limit, used = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if limit is None:
        limit = _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        used = _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes")
    if limit is None or used is None or limit >= 1 << 60:  # v1 writes "no limit" as a huge number
        return None
    return max(limit - used, 0)


def _address_space_available() -> int | None:
    """What `ulimit -v` (RLIMIT_AS) leaves this process, when it is set."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(soft - int(line.split()[1]) * 1024, 0)
    except (ImportError, OSError, ValueError):
        return None
    return None


def available_memory() -> int | None:
    """Bytes this process can still allocate: the least of free memory, its cgroup's limit and its ulimit -v
    (None where none of them can be read)."""
    found = [x for x in (_meminfo_available(), _cgroup_available(), _address_space_available()) if x is not None]
    return min(found) if found else None


def check_memory(need: float, what: str, fix: str) -> None:
    """Refuse `what` when its estimated `need` (bytes) does not fit in the memory left; say both and the fix."""
    free = available_memory()
    if free is not None and need > HEADROOM * free:
        raise DistilkitError(f"{what} needs about {human(need)} of memory, but {human(free)} is available; {fix}")


def free_bytes(folder: Path) -> tuple[Path, int | None]:
    """The nearest existing folder at or above `folder`, and the bytes free on its disk (None: cannot be told)."""
    place = Path(folder).absolute()
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        return place, shutil.disk_usage(place).free
    except OSError:
        return place, None


def check_disk(need: float, folder: Path, what: str, fix: str) -> None:
    """Refuse `what` when its estimated `need` (bytes) does not fit on the disk of `folder` (or the nearest
    existing folder above it)."""
    place, free = free_bytes(folder)
    if free is not None and need > free:
        raise DistilkitError(f"{what} needs about {human(need)} on disk, but {place} has {human(free)} free; {fix}")


# Python rows, then tokenized (Arrow) rows, take about this many bytes per byte of a data file (measured on CSV and
# text lines of 6 to 60 words: 19-24x).
MEMORY_PER_FILE_BYTE = 20


def check_file_fits(path: Path, option: str) -> None:
    """A data file is read into memory whole: refuse one that cannot fit, before reading it."""
    path = Path(path)
    try:
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    except OSError:
        return
    if path.suffix == ".gz":
        size *= 4  # text compresses about 4x
    check_memory(
        size * MEMORY_PER_FILE_BYTE,
        f"{option} {path} ({human(size)}{' compressed' if path.suffix == '.gz' else ''})",
        "give a smaller file (a sample of its lines), or run on a machine with more memory",
    )


def disk_space_ok(need: float, folder: Path) -> bool:
    """Whether `need` bytes fit on the disk of `folder` (True when it cannot be told)."""
    try:
        check_disk(need, folder, "", "")
    except DistilkitError:
        return False
    return True
