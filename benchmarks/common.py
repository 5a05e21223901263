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


def cpu_model() -> str:
    """The CPU's model name: results from different machines of this project differ by it (AMD EPYC, Intel Xeon)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def machine() -> str:
    from distilkit.models import native_bf16

    bf16 = "native bf16" if native_bf16() else "no native bf16"
    threads = f"{torch.get_num_threads()} torch threads"
    return f"{platform.machine()} {cpu_model()}, {bf16}, {threads}, torch {torch.__version__}"


def save(name: str, key: str, result: dict, folder: Path = RESULTS) -> Path:
    """Merge `result` under `key` into benchmarks/results/<name>.json (or `folder`/<name>.json; date and machine
    added)."""
    path = folder / f"{name}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = {**result, "date": date.today().isoformat(), "machine": machine()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def metrics(run_folder: Path) -> dict:
    return json.loads((run_folder / "metrics.json").read_text())


def summarise(m: dict, wall: float, argv: list) -> dict:
    """A run's result for the JSON: its command, wall time, train metrics and test scores (teacher vs student,
    retention and agreement for a distillation, with both models' dev scores; the test accuracy for a fine-tuned
    model)."""
    result = {"command": shown(argv), "wall_seconds": round(wall, 1), "train": m["train"]}
    test = m.get("test")
    if test and "retention" in test:
        key = test["metric"]
        result.update(
            metric=key,
            teacher_test=round(test["teacher"][key], 4),
            student_test=round(test["student"][key], 4),
            retention=round(test["retention"], 4),
            agreement=round(test["agreement"], 4),
        )
        dev = m.get("dev")  # the dev scores of the model the run kept: what a choice between runs may look at
        if dev and "retention" in dev:
            result.update(teacher_dev=round(dev["teacher"][key], 4), student_dev=round(dev["student"][key], 4))
    elif test:  # a fine-tuned teacher
        result.update(metric="accuracy", test=round(test["accuracy"], 4))
    return result
