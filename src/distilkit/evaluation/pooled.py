"""Test predictions kept by each run of `--folds K`, and the scores pooled over the K test splits.

A fold's run writes `predictions_test.json` beside its metrics (labels only, never texts): gold and predicted
label names, tag lists for token tasks, numbers for regression; for `distill` the teacher's predictions too. The K
folds' test splits partition the data, so their predictions pooled score every example exactly once, and the
interval of the pooled score is the bootstrap over all of them (evaluation/intervals.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from distilkit.evaluation.intervals import Units, classification_units, intervals, regression_units, token_units
from distilkit.evaluation.metrics import (
    aligned_tags,
    classification_metrics,
    default_metric,
    regression_metrics,
    token_metrics,
)

PREDICTIONS_FILE = "predictions_test.json"


def prediction_record(
    task: str, regression: bool, labels: list[str], predictions, label_ids, groups: list | None = None
) -> dict:
    """Gold and predicted values of one split (and each example's group, if any), as JSON can hold them."""
    if regression:
        gold = np.asarray(label_ids, dtype=float).reshape(-1).tolist()
        predicted = np.asarray(predictions, dtype=float).reshape(-1).tolist()
    elif task == "token-classification":
        gold, predicted = aligned_tags(np.asarray(predictions), np.asarray(label_ids), labels)
    else:
        gold = [labels[int(i)] for i in np.asarray(label_ids).reshape(-1)]
        predicted = [labels[int(i)] for i in np.asarray(predictions).reshape(-1)]
    return {"gold": gold, "predicted": predicted, **({"groups": list(groups)} if groups is not None else {})}


def write_predictions(folder: Path, records: dict[str, dict]) -> None:
    """`records`: model name ("model", or "student" and "teacher") → its prediction_record."""
    from distilkit.files import write_json

    write_json(folder / PREDICTIONS_FILE, records)


def read_predictions(folder: Path) -> dict[str, dict]:
    return json.loads((folder / PREDICTIONS_FILE).read_text())


def pooled_scores(records: list[dict], task: str, regression: bool, labels: list[str], bio: bool) -> tuple[dict, Units]:
    """The metrics (with intervals) of several runs' predictions taken together, and their units."""
    gold = [g for r in records for g in r["gold"]]
    predicted = [p for r in records for p in r["predicted"]]
    if regression:
        y, p = np.asarray(gold, dtype=float), np.asarray(predicted, dtype=float)
        metrics, units = regression_metrics(y, p), regression_units(y, p)
    elif task == "token-classification":
        metrics, units = token_metrics(gold, predicted, labels, bio), token_units(gold, predicted, bio)
    else:
        index = {name: i for i, name in enumerate(labels)}
        y, p = np.asarray([index[g] for g in gold]), np.asarray([index[q] for q in predicted])
        metrics, units = classification_metrics(y, p, labels), classification_units(y, p, len(labels))
    if all("groups" in r for r in records):
        units = units.grouped([g for r in records for g in r["groups"]])
    metrics["intervals"] = intervals(units)
    metrics["examples"] = len(gold)
    return metrics, units


def pooled_test(folders: list[Path], task: str, regression: bool, labels: list[str], bio: bool) -> dict:
    """The test metrics of the runs in `folders` pooled; for distillation runs, the student's and the teacher's,
    their paired comparison (student − teacher), retention and agreement, as distill's own results hold them."""
    from distilkit.evaluation.intervals import compare

    records = [read_predictions(folder) for folder in folders]
    if "model" in records[0]:
        return pooled_scores([r["model"] for r in records], task, regression, labels, bio)[0]
    out: dict = {}
    units = {}
    for name in ("student", "teacher"):
        out[name], units[name] = pooled_scores([r[name] for r in records], task, regression, labels, bio)
    key, _ = default_metric(task, regression, bio)
    out["paired"] = compare(units["teacher"], units["student"], key)
    if not regression:
        flat = {
            n: [x for r in records for row in r[n]["predicted"] for x in (row if isinstance(row, list) else [row])]
            for n in ("student", "teacher")
        }
        out["agreement"] = float(np.mean([s == t for s, t in zip(flat["student"], flat["teacher"])]))
        out["retention"] = out["student"][key] / max(out["teacher"][key], 1e-12)
    out["metric"] = key
    return out
