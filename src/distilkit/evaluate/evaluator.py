"""`distilkit evaluate`: metrics of a saved model on any dataset of its task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from distilkit.config import EvaluateConfig
from distilkit.data.dataset import TOK, check_known_labels, finalise_labels, load_task_data
from distilkit.data.encode import IGNORE, collator_for, encode_rows
from distilkit.errors import DistilkitError
from distilkit.evaluate.metrics import format_table, plot_confusion_matrix, task_metrics
from distilkit.inference import load_trained, run_batches
from distilkit.runs import write_atomic, write_json


def predictions_and_labels(logits: list, dataset, task: str, regression: bool):
    """Per-example logits (from `run_batches`) → predicted ids (or scores) and gold labels, padded with -100
    for token classification so `task_metrics` can align them."""
    if task == TOK:
        width = max(len(x) for x in logits)
        preds = np.full((len(logits), width), IGNORE)
        labels = np.full((len(logits), width), IGNORE)
        for i, (lg, lab) in enumerate(zip(logits, dataset["labels"])):
            preds[i, : len(lg)] = lg.argmax(-1)
            labels[i, : len(lab)] = lab
        return preds, labels
    if regression:
        return np.asarray([x[0] for x in logits]), np.asarray(dataset["labels"])
    return np.asarray([x.argmax(-1) for x in logits]), np.asarray(dataset["labels"])


def evaluate(cfg: EvaluateConfig) -> dict:
    """Evaluate `cfg.model` on one split of `cfg.data`; print a table (or JSON) and optionally write files."""
    trained = load_trained(cfg.model)
    data = load_task_data(cfg, for_training=False)
    if data.task != trained.task:
        raise DistilkitError(
            f"{data.name}: this is {data.task} data but {trained.path} is a {trained.task} model; "
            f"evaluate it on {trained.task} data (or pass --task if the data was misdetected)"
        )
    split = cfg.eval_split if cfg.eval_split in data.splits else None
    if split is None:
        if len(data.splits) == 1:
            split = next(iter(data.splits))
        else:
            raise DistilkitError(f"{data.name}: no {cfg.eval_split!r} split; it has {', '.join(data.splits)}")
    rows = data.splits[split]
    data.regression, data.labels = trained.regression, trained.labels
    if not trained.regression:
        finalise_labels(data.task, False, rows)
        check_known_labels(data.task, rows, trained.labels, split)
    else:
        finalise_labels(data.task, True, rows)
    dataset, truncated = encode_rows(rows, data.task, trained.tokenizer, cfg.max_length, trained.label2id,
                                     trained.regression)
    logits = run_batches(trained.model, dataset, collator_for(data.task, trained.tokenizer), cfg.batch_size)
    preds, labels = predictions_and_labels(logits, dataset, data.task, trained.regression)
    metrics = task_metrics(data.task, trained.regression, trained.labels, preds, labels, data.is_bio)
    metrics.update(model=trained.path, data=data.name, split=split, truncated=truncated)

    title = f"{cfg.model} on {data.name} ({split}, {len(rows)} examples, {truncated} truncated)"
    table = format_table(metrics, title=title)
    print(json.dumps(metrics, indent=2) if cfg.json else table)
    if cfg.output:
        out = Path(cfg.output)
        write_json(out / "metrics.json", metrics)
        write_atomic(out / "report.md", f"# Evaluation\n\n```\n{table}\n```\n")
        if not trained.regression:
            plot_confusion_matrix(metrics, out / "confusion_matrix.png", title=f"{data.name} {split}")
        if not cfg.json:
            print(f"\nwritten: {out / 'metrics.json'}, {out / 'report.md'}")
    return metrics
