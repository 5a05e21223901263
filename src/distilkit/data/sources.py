"""Where the data is → the raw rows of each split: a built-in dataset, a file, a folder of split files, a
`save_to_disk` folder, a Hub-style dataset folder or Hub id (through `datasets`), or data given in memory from
Python. Checking and normalising the rows is dataset.py's job."""

from __future__ import annotations

from pathlib import Path

from distilkit.budget import check_file_fits
from distilkit.config import DataOptions
from distilkit.data import builtin, hub
from distilkit.data.readers import dataset_splits, detect_format, read_disk, read_file
from distilkit.errors import DistilkitError

SPLIT_FILE_STEMS = {"train": ["train"], "dev": ["dev", "validation", "valid", "val"], "test": ["test"]}


def _find_split_files(folder: Path) -> dict[str, Path]:
    found = {}
    for split, stems in SPLIT_FILE_STEMS.items():
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.name.split(".")[0].lower() in stems:
                found[split] = f
                break
    return found


def rows_in_memory(value) -> dict[str, list[dict]]:
    """Splits of data given in memory: a datasets.Dataset (one split, divided like a single file), a DatasetDict
    (its splits; validation is dev), or a list of row dicts."""
    import datasets

    if isinstance(value, (datasets.Dataset, datasets.DatasetDict)):
        return dataset_splits(value, "data", "all")
    if isinstance(value, (list, tuple)) and value and all(isinstance(r, dict) for r in value):
        return {"all": [{**r, "_where": f"data[{i}]"} for i, r in enumerate(value)]}
    raise DistilkitError(
        f"data={type(value).__name__}: give a file or folder path, a built-in dataset name, a datasets.Dataset or "
        "DatasetDict, or a non-empty list of row dicts such as [{'text': ..., 'label': ...}]"
    )


def _read_folder(path: Path, opts: DataOptions) -> tuple[dict[str, list[dict]], str | None]:
    """A save_to_disk folder, a folder of train/dev/test files, or a folder laid out like a Hub dataset repo."""
    saved_by_datasets = any((path / f).exists() for f in ("dataset_dict.json", "dataset_info.json", "state.json"))
    if saved_by_datasets or opts.format == "disk":
        return read_disk(path), "disk"
    files = _find_split_files(path)
    if "train" in files or "test" in files:
        return {split: read_file(f, detect_format(f, opts.format)) for split, f in files.items()}, detect_format(
            next(iter(files.values())), opts.format
        )
    if hub.is_hub_style_folder(path):
        check_file_fits(path, "data folder")
        return hub.load_with_datasets(str(path), opts.data_config, opts.data_revision), "disk"
    raise DistilkitError(
        f"{path}: folder has no train.* / dev.* / test.* file, is not a save_to_disk folder, and holds no data "
        "files a Hub-style dataset folder would (data/train-*.parquet, ...)"
    )


def _read_data_option(opts: DataOptions) -> tuple[str, dict[str, list[dict]], str | None]:
    """What --data names: a built-in dataset, a file, a folder, or a Hub dataset id."""
    assert isinstance(opts.data, str)
    if builtin.is_builtin(opts.data):
        return opts.data, builtin.load(opts.data), "builtin"
    path = Path(opts.data)
    if path.is_dir():
        splits, fmt = _read_folder(path, opts)
        return path.name, splits, fmt
    if path.exists():
        if opts.data_config:
            raise DistilkitError(
                f"--data-config {opts.data_config}: only a Hub dataset id or Hub-style folder has configurations; "
                f"--data {opts.data} is a file"
            )
        fmt = detect_format(path, opts.format)
        return path.name, {"all": read_file(path, fmt)}, fmt
    if hub.looks_like_hub_id(opts.data):
        return opts.data, hub.load_with_datasets(opts.data, opts.data_config, opts.data_revision), "disk"
    raise DistilkitError(
        f"--data {opts.data}: no such file or folder, not a built-in dataset ({', '.join(builtin.NAMES)}), and not "
        "a Hub dataset id (owner/name)"
    )


def load_raw_splits(opts: DataOptions) -> tuple[str, dict[str, list[dict]], str | None]:
    """Read every split that the options name. Returns (display name, split → rows, format or None)."""
    if opts.data is not None and not isinstance(opts.data, str):  # from Python: a Dataset, a DatasetDict, rows
        return "in-memory data", rows_in_memory(opts.data), "disk"
    name, splits, fmt = _read_data_option(opts) if opts.data else ("", {}, None)
    for split, given in (("train", opts.train_file), ("dev", opts.dev_file), ("test", opts.test_file)):
        if given:
            fmt = detect_format(Path(given), opts.format)
            splits[split] = read_file(Path(given), fmt)
            name = name or Path(given).name
    if not splits:
        raise DistilkitError("no data given: pass --data (a built-in name, file, folder or Hub id) or --train-file")
    return name, splits, fmt
