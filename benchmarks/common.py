"""Helpers shared by the benchmark scripts: run a distilkit command in-process and keep results as JSON."""

from __future__ import annotations

import json
import platform
import time
from datetime import date
from pathlib import Path

import torch

HERE = Path(__file__).parent
ROOT = HERE.parent
RUNS = HERE / "runs"
RESULTS = HERE / "results"


def run_distilkit(argv: list[str]) -> float:
    """Run `distilkit argv...` in this process; return the wall time in seconds."""
    from distilkit.cli import run

    started = time.perf_counter()
    run([str(a) for a in argv])
    return time.perf_counter() - started


def shown(argv: list[str]) -> str:
    """The command as a user would type it, with paths relative to the repository."""
    return "distilkit " + " ".join(str(a).replace(str(ROOT) + "/", "") for a in argv)


def machine() -> str:
    from distilkit.models import native_bf16

    bf16 = "native bf16" if native_bf16() else "no native bf16"
    return f"{platform.machine()}, {bf16}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def save(name: str, key: str, result: dict) -> Path:
    """Merge `result` under `key` into benchmarks/results/<name>.json (date and machine added)."""
    path = RESULTS / f"{name}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = {**result, "date": date.today().isoformat(), "machine": machine()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def metrics(run_folder: Path) -> dict:
    return json.loads((run_folder / "metrics.json").read_text())
