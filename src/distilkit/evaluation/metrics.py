"""Metrics with scikit-learn and seqeval (not `evaluate`, whose `load` fetches code from the hub).

`task_metrics` returns the full result (per-class report, confusion matrix); `scalar_metrics` keeps its
numbers only, which is what the Trainer logs at each evaluation.
"""

from __future__ import annotations

import numpy as np

IGNORE = -100


def classification_metrics(y_true, y_pred, labels: list[str]) -> dict:
    """Accuracy, macro/micro/weighted P/R/F1, a per-class report and the confusion matrix (rows = true)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    ids = list(range(len(labels)))
    out = {"accuracy": float(accuracy_score(y_true, y_pred)), "examples": int(len(y_true))}
    for avg in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=ids, average=avg, zero_division=0)
        out[f"{avg}_precision"], out[f"{avg}_recall"], out[f"{avg}_f1"] = float(p), float(r), float(f)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=ids, average=None, zero_division=0)
    out["per_class"] = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(labels)
    }
    out["confusion_matrix"] = {"labels": labels, "matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist()}
    return out


def regression_metrics(y_true, y_pred) -> dict:
    from scipy.stats import pearsonr, spearmanr

    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float).reshape(-1)
    out = {
        "mse": float(np.mean((y_true - y_pred) ** 2)),
        "mae": float(np.mean(np.abs(y_true - y_pred))),
        "examples": int(len(y_true)),
    }
    constant = np.std(y_true) == 0 or np.std(y_pred) == 0
    out["pearson"] = float("nan") if constant else float(pearsonr(y_true, y_pred)[0])
    out["spearman"] = float("nan") if constant else float(spearmanr(y_true, y_pred)[0])
    return out


def token_metrics(true_tags: list[list[str]], pred_tags: list[list[str]], labels: list[str], bio: bool) -> dict:
    """Token accuracy, per-tag P/R/F1 and confusion matrix; for BIO tags also seqeval's entity-level scores."""
    flat_true = [t for seq in true_tags for t in seq]
    flat_pred = [t for seq in pred_tags for t in seq]
    index = {name: i for i, name in enumerate(labels)}
    out = classification_metrics([index[t] for t in flat_true], [index[t] for t in flat_pred], labels)
    out["token_accuracy"] = out["accuracy"]
    out["sentences"] = len(true_tags)
    out["examples"] = len(flat_true)
    if bio:
        from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

        out["entity"] = {
            "precision": float(precision_score(true_tags, pred_tags, zero_division=0)),
            "recall": float(recall_score(true_tags, pred_tags, zero_division=0)),
            "f1": float(f1_score(true_tags, pred_tags, zero_division=0)),
            "accuracy": float(accuracy_score(true_tags, pred_tags)),
            "per_type": {
                k: {m: float(v) for m, v in d.items()}
                for k, d in classification_report(true_tags, pred_tags, output_dict=True, zero_division=0).items()
            },
        }
        out["f1"] = out["entity"]["f1"]
    return out


def aligned_tags(pred_ids, label_ids, labels: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Keep positions whose label is not -100 (first word-pieces) and map ids to tag names."""
    true_tags, pred_tags = [], []
    for pred_row, label_row in zip(pred_ids, label_ids):
        keep = label_row != IGNORE
        true_tags.append([labels[i] for i in label_row[keep]])
        pred_tags.append([labels[i] for i in pred_row[keep]])
    return true_tags, pred_tags


def task_metrics(
    task: str,
    regression: bool,
    labels: list[str],
    predictions,
    label_ids,
    bio: bool = False,
    intervals: bool = False,
    groups: list | None = None,
) -> dict:
    """Full metrics from model outputs: class ids (or scores for regression) and gold label ids; with `intervals`,
    also the 95% bootstrap interval of each headline metric (`"intervals"`, evaluation/intervals.py), resampling
    whole groups when `groups` (one per example) is given."""
    if regression:
        out = regression_metrics(label_ids, predictions)
    elif task == "token-classification":
        out = token_metrics(*aligned_tags(np.asarray(predictions), np.asarray(label_ids), labels), labels, bio)
    else:
        out = classification_metrics(np.asarray(label_ids), np.asarray(predictions), labels)
    if intervals:
        from distilkit.evaluation import intervals as ci

        out["intervals"] = ci.intervals(ci.units_of(task, regression, labels, predictions, label_ids, bio, groups))
    return out


def scalar_metrics(full: dict) -> dict:
    """The top-level numbers of a metrics dict (plus entity scores), for logging and early stopping."""
    out = {k: v for k, v in full.items() if isinstance(v, (int, float))}
    for k, v in full.get("entity", {}).items():
        if isinstance(v, float):
            out[f"entity_{k}"] = v
    return out


def headline(metrics: dict, metric: str) -> float:
    """The task's main metric from a full metrics dict (entity F1 sits under "entity" for BIO tagging)."""
    flat = scalar_metrics(metrics)
    return flat.get(metric, flat.get(f"entity_{metric}"))


def default_metric(task: str, regression: bool, bio: bool) -> tuple[str, bool]:
    """The dev metric that picks the best checkpoint, and whether greater is better."""
    if regression:
        return "mse", False
    if task == "token-classification" and bio:
        return "f1", True
    return "accuracy", True


def format_table(metrics: dict, title: str = "") -> str:
    """A plain-text summary and per-class table, for the terminal and report.md."""
    lines = [title] if title else []
    head = [k for k in ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "f1", "mse", "mae", "pearson", "spearman")]
    bounds = metrics.get("intervals") or {}
    for k in head:
        if k in metrics:
            low, high = bounds.get(k) or (None, None)
            shown = f" [{low:.4f}, {high:.4f}]" if low is not None and high is not None else ""
            lines.append(f"{k:>12}: {metrics[k]:.4f}{shown}")
    if "entity" in metrics:
        e = metrics["entity"]
        lines.append(f"{'entity P/R/F1':>12}: {e['precision']:.4f} / {e['recall']:.4f} / {e['f1']:.4f}")
    lines.append(f"{'examples':>12}: {metrics.get('examples', 0)}")
    if bounds.get("resamples"):
        lines.append(
            f"{'':>12}  [95% interval: percentile bootstrap over {bounds['unit']}, {bounds['resamples']} resamples]"
        )
    per_class = metrics.get("per_class")
    if per_class:
        width = max(8, *(len(n) for n in per_class))
        lines.append("")
        lines.append(f"{'label':<{width}}  precision  recall     f1  support")
        for name, row in per_class.items():
            lines.append(
                f"{name:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:.4f}  {row['support']:7d}"
            )
    cm = metrics.get("confusion_matrix")
    if cm and len(cm["labels"]) <= 20:
        names = cm["labels"]
        width = max(6, *(len(n) for n in names))
        lines.append("")
        lines.append("confusion matrix (rows = true, columns = predicted)")
        lines.append(" " * width + "  " + " ".join(f"{n[:width]:>{width}}" for n in names))
        for name, row in zip(names, cm["matrix"]):
            lines.append(f"{name:<{width}}  " + " ".join(f"{v:>{width}d}" for v in row))
    return "\n".join(lines)


def plot_confusion_matrix(metrics: dict, path, title: str = "Confusion matrix") -> None:
    """Write the confusion matrix as a PNG heat map (row-normalised colours, raw counts as text)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(metrics["confusion_matrix"]["matrix"])
    names = metrics["confusion_matrix"]["labels"]
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.55 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(names) <= 25:
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    color="white" if share[i, j] > 0.5 else "black",
                    fontsize=8,
                )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
