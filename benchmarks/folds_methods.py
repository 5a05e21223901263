"""Distillation methods compared by pooled 5-fold cross-validation on all of bbc-news (`--folds`).

    python benchmarks/folds_methods.py [--folds 5] [--methods kd tinybert]

bbc-news's test split has 213 articles: one article is 0.47 points, and the TinyBERT ablation's comparisons of
methods were decided by one or two. Here the 2,125 articles of the built-in dataset (its train, dev and test
splits) are one labelled file. `finetune --folds 5` trains a teacher per fold with the demo's recipe (the packaged
MiniLM-L6, 2 epochs, lr 1e-4, max length 128); `distill --folds 5` distils a 3-layer student from teacher layers
0, 2, 4 with each method (the demo's 2 + 2 epochs for tinybert, 2 epochs for kd, lr 1e-4), each fold from its own
teacher, which never saw that fold. Every article is predicted once by each model: 2,125 paired predictions.
Reported: each model's pooled accuracy with its 95% bootstrap interval, each student against the teacher, and each
pair of methods against each other on the same articles (paired bootstrap interval and McNemar's exact test).
Writes benchmarks/results/folds_methods.json. About 45 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from itertools import combinations
from pathlib import Path

from common import RUNS, run_distilkit, save

from distilkit.evaluation.intervals import compare
from distilkit.evaluation.pooled import pooled_scores, read_predictions

METHODS = {
    "kd": ["--method", "kd", "--epochs", "2"],
    "tinybert": ["--method", "tinybert", "--intermediate-epochs", "2", "--epochs", "2"],
}


def write_all_articles(path: Path) -> Path:
    """The built-in bbc-news, every split, as one CSV file (text, label)."""
    from distilkit.config import DataOptions
    from distilkit.data.dataset import load_task_data

    data = load_task_data(DataOptions(data="bbc-news"), seed=42, for_training=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        for split in ("train", "dev", "test"):
            writer.writerows({"text": r["text"], "label": r["label"]} for r in data.splits[split])
    return path


def pooled(run: Path, who: str, folds: int, labels: list[str]):
    records = [read_predictions(run / "folds" / f"fold-{k}")[who] for k in range(folds)]
    return pooled_scores(records, "sequence-classification", False, labels, False)


def shown(metrics: dict) -> dict:
    return {"accuracy": round(metrics["accuracy"], 4), "interval": metrics["intervals"]["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    args = parser.parse_args()
    work = RUNS / "folds_methods"
    data = write_all_articles(work / "bbc-news-all.csv")
    common = ["--data", data, "--folds", args.folds, "--max-length", "128", "--lr", "1e-4", "--resume"]
    teacher = work / "teacher"
    seconds = {}
    if not (teacher / "metrics.json").exists():
        started = time.perf_counter()
        run_distilkit(["finetune", "--model", "minilm-l6", "--epochs", "2", "--output", teacher, *common])
        seconds["teacher"] = round(time.perf_counter() - started)
    labels = json.loads((teacher / "metrics.json").read_text())["labels"]
    for method in args.methods:
        out = work / f"3L-{method}"
        if not (out / "metrics.json").exists():
            started = time.perf_counter()
            run_distilkit(
                ["distill", "--teacher", teacher, "--student", "3", *METHODS[method], "--output", out, *common]
            )
            seconds[method] = round(time.perf_counter() - started)
    # the teacher as each distillation scored it (the same fold models, evaluated beside the student: the pairs
    # line up example by example); its own finetune run's pooled score is kept for reference
    teacher_metrics, teacher_units = pooled(work / f"3L-{args.methods[0]}", "teacher", args.folds, labels)
    students = {m: pooled(work / f"3L-{m}", "student", args.folds, labels) for m in args.methods}
    result = {
        "folds": args.folds,
        "examples": teacher_metrics["examples"],
        "seconds": seconds,
        "teacher": shown(teacher_metrics),
        "teacher_finetune_run": shown(json.loads((teacher / "metrics.json").read_text())["test"]),
        "students": {m: shown(metrics) for m, (metrics, _) in students.items()},
        "student_vs_teacher": {m: compare(teacher_units, units, "accuracy") for m, (_, units) in students.items()},
        "method_vs_method": {
            f"{b} - {a}": compare(students[a][1], students[b][1], "accuracy") for a, b in combinations(args.methods, 2)
        },
    }
    print(json.dumps(result, indent=2))
    print(f"written to {save('folds_methods', 'bbc-news-3L', result)}")


if __name__ == "__main__":
    main()
