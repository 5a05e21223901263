"""`distilkit evaluate`: metrics of a saved model on any dataset of its task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from distilkit.console import show
from distilkit.data.dataset import TOK, check_known_labels, finalise_labels, groups_of, load_task_data
from distilkit.data.encode import IGNORE, collator_for, encode_rows
from distilkit.errors import DistilkitError
from distilkit.evaluation.intervals import compare, describe, intervals, units_of
from distilkit.evaluation.metrics import default_metric, format_table, headline, plot_confusion_matrix, task_metrics
from distilkit.evaluation.options import EvaluateConfig
from distilkit.files import check_writable_folder, listing, mark, marker_kind, record_files, write_atomic, write_json
from distilkit.inference.loading import load_trained, run_batches
from distilkit.runs import make_folder, written_by_distilkit


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


def split_rows_for(trained, opts, split_name: str, as_in_training: bool = False):
    """The rows of one split of the data named by `opts`, checked against the model's task and labels.

    A single data file without splits is used whole, unless `as_in_training`: then dev/test are carved from it
    with --split and the default seed exactly as `finetune` did (so "dev" means the run's own dev split).
    Returns (TaskData, split actually used, rows)."""
    data, [(split, rows)] = splits_rows_for(trained, opts, [split_name], as_in_training)
    return data, split, rows


def splits_rows_for(trained, opts, split_names: list[str], as_in_training: bool = False):
    """`split_rows_for` for several splits with one read of the data: (TaskData, [(split used, rows), ...])."""
    if as_in_training:
        data = load_task_data(opts, for_training=True, known_labels=trained.labels or None)
    else:
        data = load_task_data(opts, for_training=False)
    if data.task != trained.task:
        raise DistilkitError(
            f"{data.name}: this is {data.task} data but {trained.path} is a {trained.task} model; "
            f"use {trained.task} data (or pass --task if the data was misdetected)"
        )
    data.regression, data.labels = trained.regression, trained.labels
    out = []
    for split_name in split_names:
        split = split_name if split_name in data.splits else None
        if split is None:
            if len(data.splits) == 1:
                split = next(iter(data.splits))
            else:
                raise DistilkitError(f"{data.name}: no {split_name!r} split; it has {', '.join(data.splits)}")
        data.splits[split] = rows = finalise_labels(data.task, trained.regression, data.splits[split])
        if not trained.regression:
            check_known_labels(data.task, rows, trained.labels, split)
        out.append((split, rows))
    return data, out


def score_rows(trained, data, rows: list[dict], max_length: int, batch_size: int, units: bool = False):
    """Metrics of a loaded model (torch or ONNX) on rows of its task; also returns the per-example logits, and with
    `units` the scored units for a paired comparison (evaluation/intervals.py)."""
    dataset, truncated = encode_rows(
        rows, data.task, trained.tokenizer, max_length, trained.label2id, trained.regression
    )
    logits = run_batches(trained.model, dataset, collator_for(data.task, trained.tokenizer), batch_size)
    preds, labels = predictions_and_labels(logits, dataset, data.task, trained.regression)
    metrics = task_metrics(data.task, trained.regression, trained.labels, preds, labels, data.is_bio)
    groups = groups_of(rows)
    scored = units_of(data.task, trained.regression, trained.labels, preds, labels, data.is_bio, groups)
    metrics.update(intervals=intervals(scored), model=trained.path, data=data.name, truncated=truncated)
    return (metrics, logits, scored) if units else (metrics, logits)


def compared_model(path: str, trained):
    """`--compare`'s model, loaded and checked (same task and labels) before anything is scored."""
    other = load_trained(path, trained.max_length)
    if (other.task, other.regression, list(other.labels)) != (trained.task, trained.regression, list(trained.labels)):
        raise DistilkitError(
            f"--compare {path}: it predicts {other.task} {'scores' if other.regression else other.labels}, "
            f"--model {trained.task} {'scores' if trained.regression else trained.labels}; compare models of the "
            "same labels"
        )
    return other


def paired_with(other, trained, data, rows: list[dict], cfg: EvaluateConfig, this) -> dict:
    """The other model scored on the same rows, and this model − it in the headline metric."""
    other_metrics, _, other_units = score_rows(other, data, rows, cfg.max_length, cfg.batch_size, units=True)
    metric, _ = default_metric(data.task, trained.regression, data.is_bio)
    paired = compare(other_units, this, metric)
    return {**paired, "compared_with": cfg.compare, "compared_score": headline(other_metrics, metric)}


EVALUATION_FILES = ("metrics.json", "report.md", "confusion_matrix.png")


def check_evaluation_output(out: Path, overwrite: bool) -> None:
    """evaluate writes three files into --output: never into a training run, never over files without --overwrite."""
    if out.exists() and not out.is_dir():
        raise DistilkitError(f"--output {out}: a file is there; evaluate writes a folder (metrics.json, report.md)")
    kind = marker_kind(out)
    if kind is None and not written_by_distilkit(out):
        check_writable_folder(out, "eval")
    if (kind not in (None, "evaluation")) or (kind is None and written_by_distilkit(out)):
        raise DistilkitError(
            f"--output {out}: a distilkit {kind or 'run'} folder; evaluate would replace its own "
            f"files: write the evaluation elsewhere, e.g. --output {out / 'eval'}"
        )
    existing = [name for name in EVALUATION_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise DistilkitError(
            f"--output {out}: {', '.join(existing)} already there; pass --overwrite to replace them "
            "or choose another --output"
        )


def evaluate(cfg: EvaluateConfig, resolved: dict | None = None) -> dict:
    """Evaluate `cfg.model` on one split of `cfg.data`; print a table (or JSON) and optionally write files. An
    embedding model (or --task embedding) is scored on retrieval instead (evaluation/embedding.py)."""
    from distilkit.evaluation.embedding import evaluate_embedding
    from distilkit.inference.embedding import is_embedding_model

    if cfg.task == "embedding" or is_embedding_model(cfg.model):
        return evaluate_embedding(cfg)
    if cfg.output:
        check_evaluation_output(Path(cfg.output), cfg.overwrite)
    trained = load_trained(cfg.model, cfg.max_length)
    cfg.max_length = trained.max_length
    other = compared_model(cfg.compare, trained) if cfg.compare else None
    data, split, rows = split_rows_for(trained, cfg, cfg.eval_split)
    metrics, _, units = score_rows(trained, data, rows, cfg.max_length, cfg.batch_size, units=True)
    metrics["split"] = split
    truncated = metrics["truncated"]

    title = f"{cfg.model} on {data.name} ({split}, {len(rows)} examples, {truncated} truncated)"
    table = format_table(metrics, title=title)
    if cfg.compare:
        metrics["paired"] = paired_with(other, trained, data, rows, cfg, units)
        score = metrics["paired"]["compared_score"]
        table += f"\n\nthis model − {cfg.compare} ({score:.4f}) on the same examples: {describe(metrics['paired'])}"
    show(json.dumps(metrics, indent=2) if cfg.json else table)
    if cfg.output:
        confusion = None if trained.regression else f"{data.name} {split}"
        write_evaluation(Path(cfg.output), metrics, table, cfg.json, confusion)
    return metrics


def write_evaluation(out: Path, metrics: dict, table: str, quiet: bool, confusion: str | None = None) -> None:
    """metrics.json, report.md (the table) and, titled `confusion`, the confusion matrix, in the marked folder."""
    make_folder(out)
    before = set(listing(out))
    mark(out, "evaluation")
    write_json(out / "metrics.json", metrics)
    write_atomic(out / "report.md", f"# Evaluation\n\n```\n{table}\n```\n")
    if confusion:
        plot_confusion_matrix(metrics, out / "confusion_matrix.png", title=confusion)
    record_files(out, new_since=before)
    if not quiet:
        show(f"\nwritten: {out / 'metrics.json'}, {out / 'report.md'}")
