"""Benchmark: continual learning on bbc-news — train on 3 topics, continue on the other 2, measure forgetting.

    python benchmarks/continual.py [--epochs 2]

Writes the topic subsets of the built-in split as CSV files, fine-tunes MiniLM-L6 on business/entertainment/
politics, then continues on sport/tech three ways: plain, `--preserve kd` (LwF) and `--preserve kd --replay
200`. Reports accuracy on the first 3 topics' test rows before and after. Writes
benchmarks/results/continual.json.
"""

from __future__ import annotations

import argparse
import csv

from common import RUNS, metrics, run_distilkit, save, shown

OLD, NEW = {"business", "entertainment", "politics"}, {"sport", "tech"}


def write_subsets(folder):
    from distilkit.data import builtin

    splits = builtin.load("bbc-news")
    for name, topics in (("old", OLD), ("new", NEW)):
        for split, rows in splits.items():
            path = folder / name / f"{split}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=["text", "label"])
                writer.writeheader()
                writer.writerows({"text": r["text"], "label": r["label"]} for r in rows if r["label"] in topics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", default="2")
    args = parser.parse_args()
    data = RUNS / "continual-data"
    write_subsets(data)
    common = [
        "--epochs",
        args.epochs,
        "--lr",
        "1e-4",
        "--batch-size",
        "32",
        "--max-length",
        "128",
        "--threads",
        "2",
        "--overwrite",
    ]
    old = RUNS / "continual-old"
    keep = ["--keep-data-sample"]  # --replay and the forgetting numbers read the old run's data sample
    run_distilkit(["finetune", "--model", "minilm-l6", "--data", data / "old", "--output", old, *common, *keep])
    variants = {
        "plain": [],
        "preserve_kd": ["--preserve", "kd"],
        "preserve_kd_replay200": ["--preserve", "kd", "--replay", "200"],
    }
    for name, extra in variants.items():
        out = RUNS / f"continual-{name}"
        argv = ["finetune", "--continue-from", old, "--data", data / "new", "--output", out, *common, *extra]
        wall = run_distilkit(argv)
        c = metrics(out)["continual"]
        result = {
            "command": shown(argv),
            "old_task_before": round(c["old_task"]["before"], 4),
            "old_task_after": round(c["old_task"]["after"], 4),
            "forgetting": round(c["old_task"]["forgetting"], 4),
            "new_task_after": round(c["new_task"]["after"], 4),
            "old_test_examples": c["old_task"]["examples"],
            "new_test_examples": c["new_task"]["examples"],
            "wall_seconds": round(wall, 1),
        }
        save("continual", name, result)
        print(
            f"\n{name}: old {result['old_task_before']:.3f} → {result['old_task_after']:.3f}, new after "
            f"{result['new_task_after']:.3f}\n"
        )


if __name__ == "__main__":
    main()
