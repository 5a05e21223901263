"""Data that `datasets.load_dataset` finds for us: Hugging Face Hub dataset ids (`--data stanfordnlp/sst2`) and
local folders laid out like a Hub dataset repo (`data/train-00000-of-00001.parquet`, `train/*.csv`, a README.md
whose YAML names configs). The HF cache and `HF_HUB_OFFLINE` / `HF_DATASETS_OFFLINE` are honoured by `datasets`.

The splits come back as rows with `_where` naming the dataset, split and row, so the same checks (empty text,
label types, unseen labels) name the row to fix as they do for a file's line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from distilkit.data.readers import dataset_splits
from distilkit.errors import DistilkitError

# owner/name or a bare canonical name, as the Hub spells dataset ids
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
# files `datasets` builds a dataset from, when a folder holds them (possibly in data/ or per-split subfolders)
DATA_SUFFIXES = {".parquet", ".arrow", ".csv", ".tsv", ".json", ".jsonl", ".txt"}


def looks_like_hub_id(name: str) -> bool:
    return bool(HUB_ID.match(name)) and not name.endswith((".csv", ".tsv", ".json", ".jsonl", ".parquet"))


def is_hub_style_folder(folder: Path) -> bool:
    """A folder `load_dataset(folder)` can read: a dataset card, or data files up to two folders down."""
    if (folder / "README.md").is_file():
        return True
    return any(
        f.suffix.lower() in DATA_SUFFIXES
        for pattern in ("*", "*/*", "*/*/*")
        for f in folder.glob(pattern)
        if f.is_file()
    )


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _reason(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _load_error(source: str, config: str | None, err: Exception) -> DistilkitError:
    """One line for what load_dataset raised: a missing dataset, a missing config, no network, anything else."""
    import datasets

    reason = _reason(err)
    if isinstance(err, datasets.exceptions.DatasetNotFoundError):
        return DistilkitError(
            f"--data {source}: no such dataset on the Hub, or it is private or gated ({reason}); check the id, or "
            "log in with `hf auth login`"
        )
    if isinstance(err, ConnectionError) or "couldn't reach" in reason.lower():
        how = (
            "it is not in the local HF cache (HF_HUB_OFFLINE is set)"
            if _offline()
            else "the Hub could not be reached; check the network, or set HF_HUB_OFFLINE=1 to use the HF cache"
        )
        from distilkit.data.builtin import NAMES

        return DistilkitError(
            f"--data {source}: no such file or folder, not a built-in dataset ({', '.join(NAMES)}), and as a Hub "
            f"dataset id {how} ({reason})"
        )
    if "config name is missing" in reason.lower() or (config and "config" in reason.lower()):
        return DistilkitError(f"--data {source}: {reason}; pass one with --data-config NAME")
    return DistilkitError(f"--data {source}: datasets.load_dataset could not read it ({reason})")


def load_with_datasets(source: str, config: str | None, revision: str | None) -> dict[str, list[dict]]:
    """Every split of a Hub dataset id or Hub-style folder, as rows (`validation` becomes dev)."""
    import datasets

    try:
        loaded = datasets.load_dataset(source, name=config, revision=revision)
    except Exception as err:  # datasets raises many types (not found, offline, bad config, bad files)
        raise _load_error(source, config, err) from None
    return dataset_splits(loaded, source, "train")
