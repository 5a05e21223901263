"""Benchmark: fine-tune the packaged MiniLM-L6 on the built-in datasets; accuracy and wall time.

    python benchmarks/finetune_builtin.py [--only bbc-news|brown-pos] [--threads 2]

Writes benchmarks/results/finetune_builtin.json and prints a table. Run folders go to benchmarks/runs/.
Settings are the ones quoted in the README; brown-pos trains on a seeded 10,000-sentence sample of its
train split (the whole split is 45,872 sentences: ~45 minutes an epoch on 2 CPU cores) and is tested on
its full test split.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

from common import machine

HERE = Path(__file__).parent
JOBS = {
    "bbc-news": ["--data", "bbc-news", "--epochs", "3", "--lr", "1e-4", "--batch-size", "32", "--max-length", "128"],
    "brown-pos": [
        "--data",
        "brown-pos",
        "--epochs",
        "2",
        "--lr",
        "1e-4",
        "--batch-size",
        "32",
        "--max-length",
        "128",
        "--train-sample",
        "10000",
    ],
}


def run_job(name: str, threads: int) -> dict:
    from distilkit.cli import run

    args = list(JOBS[name])
    train_sample = None
    if "--train-sample" in args:
        i = args.index("--train-sample")
        train_sample = int(args[i + 1])
        del args[i : i + 2]
    output = HERE / "runs" / f"minilm-l6-{name}"
    argv = [
        "finetune",
        "--model",
        "minilm-l6",
        "--output",
        str(output),
        "--overwrite",
        "--threads",
        str(threads),
    ] + args
    if train_sample:
        argv += ["--max-train-samples", str(train_sample)]
    started = time.perf_counter()
    run(argv)
    wall = time.perf_counter() - started
    metrics = json.loads((output / "metrics.json").read_text())
    test = metrics["test"]
    return {
        "dataset": name,
        "command": "distilkit " + " ".join(a.replace(str(HERE.parent) + "/", "") for a in argv),
        "wall_seconds": round(wall, 1),
        "train_seconds": metrics["train"]["wall_seconds"],
        "train_examples": metrics["train"]["examples"],
        "test_examples": test["examples"],
        "test_accuracy": round(test["accuracy"], 4),
        "test_macro_f1": round(test["macro_f1"], 4),
        "dev_accuracy": round(metrics["dev"]["accuracy"], 4),
        "truncated": metrics["truncated"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=list(JOBS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    names = [args.only] if args.only else list(JOBS)
    out_path = HERE / "results" / "finetune_builtin.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    for name in names:
        results[name] = run_job(name, args.threads)
        results[name]["date"] = date.today().isoformat()
        results[name]["machine"] = machine()
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'dataset':<10} {'train ex':>8} {'test ex':>8} {'accuracy':>9} {'macro F1':>9} {'train s':>8}")
    for r in results.values():
        print(
            f"{r['dataset']:<10} {r['train_examples']:>8} {r['test_examples']:>8} {r['test_accuracy']:>9.4f} "
            f"{r['test_macro_f1']:>9.4f} {r['train_seconds']:>8.0f}"
        )
    print(f"written: {out_path}")


if __name__ == "__main__":
    sys.exit(main())
