"""Helpers shared by prune, export and quantize: finding a model's run and data, default output folders."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml

from distilkit.config import DataOptions
from distilkit.errors import DistilkitError

DATA_FIELDS = [f.name for f in dataclasses.fields(DataOptions)]
SOURCES = ("data", "train_file", "dev_file", "test_file")


def training_run_of(p: Path) -> Path | None:
    """`runs/x` for a training run folder `runs/x` or its model folder `runs/x/model`, else None."""
    if (p / "config.yaml").exists() and (p / "model").is_dir():
        return p
    if p.name == "model" and (p.parent / "config.yaml").exists():
        return p.parent
    return None


def run_folder_of(path: str) -> Path | None:
    """The distilkit run folder a model belongs to: `runs/x` for `runs/x` or `runs/x/model`, else None.

    ONNX folders point back to the model they were exported from (their `source`)."""
    p = Path(path)
    if (p / "config.yaml").exists() and (p / "distilkit_onnx.json").exists():
        return p
    if (run := training_run_of(p)) is not None:
        return run
    meta = p / "distilkit_onnx.json"
    if meta.exists():
        source = json.loads(meta.read_text()).get("source")
        if source and Path(source).exists() and Path(source).resolve() != p.resolve():
            return run_folder_of(source)
    return None


def with_run_data(opts, model: str, needed_for: str):
    """`opts` with its data options filled from the model's run `config.yaml` when none were given.

    So `distilkit quantize --model runs/teacher/onnx` evaluates on the teacher's own dev split without
    repeating --data. Options given on the command line always win."""
    if any(getattr(opts, k) for k in SOURCES):
        return opts
    run = run_folder_of(model)
    saved = {}
    if run is not None:
        try:
            saved = yaml.safe_load((run / "config.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            saved = {}
    if not any(saved.get(k) for k in SOURCES):
        raise DistilkitError(
            f"{model}: no data for {needed_for}; pass --data (the model's own training data, e.g. --data bbc-news)"
        )
    given = dataclasses.asdict(opts)
    defaults = {f.name: f.default for f in dataclasses.fields(DataOptions)}
    # take the run's data options, except those the user changed from their defaults
    updates = {k: saved[k] for k in DATA_FIELDS if k in saved and given[k] == defaults[k]}
    return dataclasses.replace(opts, **updates)


def default_output(model: str, suffix: str) -> str:
    """`runs/x` (or `runs/x/model`) → `runs/x/<suffix>`; any other folder `f` → `f-<suffix>`."""
    p = Path(model)
    run = training_run_of(p)
    return str(run / suffix) if run is not None else str(p.parent / f"{p.name}-{suffix}")


def check_fraction(value: float, option: str, what: str) -> None:
    if not 0 <= value < 1:
        raise DistilkitError(f"{option} {value}: give the fraction of {what} to remove, in [0, 1) (1 would remove all)")
