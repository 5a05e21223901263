"""Confidence intervals of the task metrics, and the paired comparison of two models on the same examples.

**Intervals.** A percentile bootstrap (Efron & Tibshirani 1993) over the units a score is made of: examples for
sequence tasks, sentences for token tasks (the tokens of one sentence are not independent draws), and whole groups
where the data names them (`--group-column`: the sentences of one document, the reviews of one product), resampled
as clusters (Field & Welsh 2007): each group's sums are one unit. Every headline
metric here is a function of sums over units: correct predictions; per-class true positives, predictions and
gold labels (macro-F1); correct, predicted and gold entities (entity F1); errors and the moments of Pearson's r.
So a resample is a count vector over the units and its sums one matrix product: scipy.stats.bootstrap draws the
resamples (seeded), and the statistic is vectorised over them (1,000 resamples of 10,000 examples: about 0.2 s).
Spearman's ρ, a function of ranks, is resampled on its own.

**Paired comparison.** The difference B − A of one metric between two models scored on the same units, with a
paired bootstrap interval (the same resamples for both), and for accuracy of sequence tasks McNemar's exact test
(McNemar 1947; the exact form: a two-sided binomial test of the discordant pairs, A right and B wrong against B
right and A wrong, Fagerland, Lydersen & Laake 2013). Tokens of a sentence are not independent pairs, so token
tasks get the bootstrap interval only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 1000
SEED = 0
BATCH = 100  # resamples drawn at a time: memory is BATCH × units counts


@dataclass
class Units:
    """Per-unit sums (`table`: units × columns) and the metrics computed from their totals."""

    unit: str  # "examples" or "sentences"
    table: np.ndarray
    metrics: dict[str, Callable[[np.ndarray], np.ndarray]]  # name → f(totals: resamples × columns) → resamples
    correct: np.ndarray | None = None  # per-unit 0/1 correctness, for McNemar (sequence classification)
    pairs: tuple[np.ndarray, np.ndarray] | None = None  # (gold, predicted) values, for Spearman's ρ
    spearman: float | None = None  # Spearman's ρ of grouped units, which keep no pairs

    def grouped(self, groups: list) -> Units:
        """The same scores over groups of units: each group's rows summed into one. McNemar's test and Spearman's
        interval need independent single units, so they are dropped (Spearman's point estimate is kept)."""
        keys, index = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
        table = np.zeros((len(keys), self.table.shape[1]))
        np.add.at(table, index, self.table)
        spearman = self.point().get("spearman")
        return Units("groups", table, self.metrics, spearman=spearman)

    def point(self) -> dict[str, float]:
        totals = self.table.sum(axis=0, keepdims=True)
        out = {name: float(fn(totals)[0]) for name, fn in self.metrics.items()}
        if self.pairs is not None:
            out["spearman"] = float(_spearman(*(v[None, :] for v in self.pairs))[0])
        elif self.spearman is not None:
            out["spearman"] = self.spearman
        return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's and seqeval's zero_division=0)."""
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def classification_units(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> Units:
    """Accuracy and macro-F1 (every class counted, as scikit-learn's with labels=range(classes))."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    eye = np.eye(classes)
    correct = (y_true == y_pred).astype(float)
    # columns: correct, then true positives, predictions and gold labels of each class
    table = np.column_stack([correct, eye[y_true] * correct[:, None], eye[y_pred], eye[y_true]])

    def accuracy(t: np.ndarray) -> np.ndarray:  # over the examples drawn: groups differ in size
        return _ratio(t[:, 0], t[:, 1 + 2 * classes :].sum(axis=1))

    def macro_f1(t: np.ndarray) -> np.ndarray:
        tp, pred, gold = (t[:, 1 + i * classes : 1 + (i + 1) * classes] for i in range(3))
        return _ratio(2 * tp, pred + gold).mean(axis=1)

    return Units("examples", table, {"accuracy": accuracy, "macro_f1": macro_f1}, correct=correct)


def token_units(true_tags: list[list[str]], pred_tags: list[list[str]], bio: bool) -> Units:
    """Token accuracy per sentence and, for BIO tags, entity F1 as seqeval counts it (exact spans and types)."""
    columns = [[sum(t == p for t, p in zip(ts, ps)), len(ts)] for ts, ps in zip(true_tags, pred_tags)]

    def token_accuracy(t: np.ndarray) -> np.ndarray:
        return _ratio(t[:, 0], t[:, 1])

    # "accuracy" too: token_metrics reports token accuracy under both names
    metrics: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "accuracy": token_accuracy,
        "token_accuracy": token_accuracy,
    }
    if bio:
        from seqeval.metrics.sequence_labeling import get_entities

        for row, ts, ps in zip(columns, true_tags, pred_tags):
            gold, pred = set(get_entities(ts)), set(get_entities(ps))
            row += [len(gold & pred), len(pred), len(gold)]
        metrics["f1"] = lambda t: _ratio(2 * t[:, 2], t[:, 3] + t[:, 4])
    return Units("sentences", np.asarray(columns, dtype=float).reshape(len(columns), -1), metrics)


def regression_units(y_true: np.ndarray, y_pred: np.ndarray) -> Units:
    """MSE, MAE and Pearson's r from sums; Spearman's ρ resampled from the pairs."""
    x, y = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float).reshape(-1)
    table = np.column_stack([np.ones_like(x), (x - y) ** 2, np.abs(x - y), x, y, x * x, y * y, x * y])

    def pearson(t: np.ndarray) -> np.ndarray:
        n, sx, sy, sxx, syy, sxy = t[:, 0], t[:, 3], t[:, 4], t[:, 5], t[:, 6], t[:, 7]
        cov, vx, vy = n * sxy - sx * sy, n * sxx - sx * sx, n * syy - sy * sy
        return np.divide(cov, np.sqrt(vx * vy), out=np.full_like(cov, np.nan), where=(vx > 0) & (vy > 0))

    metrics = {"mse": lambda t: t[:, 1] / t[:, 0], "mae": lambda t: t[:, 2] / t[:, 0], "pearson": pearson}
    return Units("examples", table, metrics, pairs=(x, y))


def _spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's ρ along the last axis: Pearson's r of the ranks (ties averaged)."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=-1), rankdata(y, axis=-1)
    rx, ry = rx - rx.mean(axis=-1, keepdims=True), ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
    return np.divide((rx * ry).sum(axis=-1), den, out=np.full(den.shape, np.nan), where=den > 0)


def units_of(
    task: str, regression: bool, labels: list[str], predictions, label_ids, bio: bool, groups: list | None = None
) -> Units:
    """The units of a task's scores, from what metrics.task_metrics takes; with `groups` (one per example, as
    data.dataset.groups_of gives them), grouped."""
    from distilkit.evaluation.metrics import aligned_tags

    if regression:
        units = regression_units(np.asarray(label_ids), np.asarray(predictions))
    elif task == "token-classification":
        units = token_units(*aligned_tags(np.asarray(predictions), np.asarray(label_ids), labels), bio)
    else:
        units = classification_units(np.asarray(label_ids), np.asarray(predictions), len(labels))
    return units.grouped(groups) if groups is not None else units


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """Resamples of unit indices (..., n) as count vectors (resamples × n): how often each unit was drawn."""
    flat = np.asarray(idx).reshape(-1, n)
    offsets = (np.arange(len(flat)) * n)[:, None]
    return np.bincount((flat + offsets).ravel(), minlength=len(flat) * n).reshape(len(flat), n)


def _resampled_totals(table: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Totals of `table` for resamples of its row indices: (..., units) indices → (..., columns) totals."""

    def totals(idx: np.ndarray) -> np.ndarray:
        return (_counts(idx, len(table)) @ table).reshape(*np.shape(idx)[:-1], table.shape[1])

    return totals


def _bootstrap(statistic: Callable, n: int, seed: int, resamples: int, confidence: float):
    from scipy.stats import bootstrap

    return bootstrap(
        (np.arange(n),),
        statistic,
        vectorized=True,
        method="percentile",
        n_resamples=resamples,
        confidence_level=confidence,
        batch=BATCH,
        random_state=np.random.default_rng(seed),
    ).confidence_interval


def intervals(units: Units, resamples: int = RESAMPLES, seed: int = SEED, confidence: float = CONFIDENCE) -> dict:
    """`{"confidence", "resamples", "unit", <metric>: [low, high], ...}` for every metric of `units`."""
    out: dict = {"confidence": confidence, "resamples": resamples, "unit": units.unit, "method": "percentile bootstrap"}
    n, names = len(units.table), list(units.metrics)
    if n < 2:
        return out
    totals = _resampled_totals(units.table)

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        t = totals(idx).reshape(-1, units.table.shape[1])
        return np.stack([units.metrics[name](t) for name in names]).reshape(len(names), *np.shape(idx)[:-1])

    ci = _bootstrap(statistic, n, seed, resamples, confidence)
    for i, name in enumerate(names):
        out[name] = _pair(ci.low[i], ci.high[i])
    if units.pairs is not None:
        rho = _bootstrap(_resampled_spearman(*units.pairs), n, seed, resamples, confidence)
        out["spearman"] = _pair(rho.low, rho.high)
    return out


def _resampled_spearman(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Spearman's ρ of resamples, without sorting each one: a resample is a count vector `w` over the units, so
    the (tie-averaged) rank of a value within it is the count of smaller values drawn plus (its own count + 1) / 2,
    a cumulative sum in the order sorted once; ρ is then the `w`-weighted Pearson r of the two ranks."""
    n = len(x)

    def ranker(v: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        order = np.argsort(v, kind="stable")
        new_value = np.r_[True, v[order][1:] != v[order][:-1]]
        starts, group = np.flatnonzero(new_value), np.empty(n, dtype=np.int64)
        group[order] = np.cumsum(new_value) - 1

        def ranks(w: np.ndarray) -> np.ndarray:
            counts = np.add.reduceat(w[:, order], starts, axis=1)  # draws of each distinct value
            return (np.cumsum(counts, axis=1) - (counts - 1) / 2)[:, group]

        return ranks

    rank_x, rank_y = ranker(x), ranker(y)

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        w = _counts(idx, n).astype(float)
        rx, ry = rank_x(w), rank_y(w)
        mx, my = (w * rx).sum(1, keepdims=True) / n, (w * ry).sum(1, keepdims=True) / n
        cov = (w * (rx - mx) * (ry - my)).sum(1)
        den = np.sqrt((w * (rx - mx) ** 2).sum(1) * (w * (ry - my) ** 2).sum(1))
        rho = np.divide(cov, den, out=np.full(den.shape, np.nan), where=den > 0)
        return rho.reshape(np.shape(idx)[:-1])

    return statistic


def _pair(low: float, high: float) -> list[float | None]:
    return [None if np.isnan(v) else round(float(v), 6) for v in (low, high)]


def compare(a: Units, b: Units, metric: str, seed: int = SEED, resamples: int = RESAMPLES) -> dict:
    """Model B against model A on the same units: B − A in `metric`, its paired interval, and McNemar's exact test
    for accuracy where each unit is one prediction. `significant`: the interval excludes 0 (and p < 0.05)."""
    if len(a.table) != len(b.table) or a.unit != b.unit:
        raise ValueError("compare() needs both models scored on the same units")
    point = b.point()[metric] - a.point()[metric]
    out: dict = {"metric": metric, "difference": round(point, 6), "unit": a.unit}
    if len(a.table) >= 2:
        both = np.hstack([a.table, b.table])
        width = a.table.shape[1]
        totals = _resampled_totals(both)

        def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
            t = totals(idx).reshape(-1, both.shape[1])
            diff = b.metrics[metric](t[:, width:]) - a.metrics[metric](t[:, :width])
            return diff.reshape(np.shape(idx)[:-1])

        ci = _bootstrap(statistic, len(both), seed, resamples, CONFIDENCE)
        out["interval"] = _pair(ci.low, ci.high)
    if metric == "accuracy" and a.correct is not None and b.correct is not None:
        out.update(mcnemar(a.correct, b.correct))
    low, high = out.get("interval", [None, None])
    out["significant"] = (
        low is not None and high is not None and (low > 0 or high < 0) and out.get("p_value", 0.0) < 0.05
    )
    return out


def mcnemar(a_correct: np.ndarray, b_correct: np.ndarray) -> dict:
    """McNemar's exact test: the discordant pairs (only A right, only B right) and the two-sided p-value."""
    from scipy.stats import binomtest

    only_a = int(np.sum((a_correct == 1) & (b_correct == 0)))
    only_b = int(np.sum((a_correct == 0) & (b_correct == 1)))
    p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return {"only_a_right": only_a, "only_b_right": only_b, "p_value": round(p, 6), "test": "McNemar exact"}


def describe(paired: dict) -> str:
    """One line for a summary: "accuracy −0.47 pt [−1.88, +0.94], not significant (p = 0.62, McNemar exact)";
    scores in [0, 1] are shown in points, error metrics (mse, mae) as they are."""
    scale, unit = (1, "") if paired["metric"] in ("mse", "mae") else (100, " pt")
    low, high = paired.get("interval", [None, None])
    interval = f" [{scale * low:+.2f}, {scale * high:+.2f}]" if low is not None and high is not None else ""
    verdict = "significant" if paired["significant"] else "not significant"
    test = f"p = {paired['p_value']:.3g}, {paired['test']}; " if "p_value" in paired else ""
    return (
        f"{paired['metric']} {scale * paired['difference']:+.2f}{unit}{interval}, {verdict} "
        f"({test}95% paired bootstrap over {paired['unit']})"
    )


def retention_lower(paired: dict, teacher_score: float, metric: str) -> float | None:
    """The lower end of a model's retention (its score as a share of the teacher's) at 95%, from the paired interval
    of its difference from the teacher: (teacher + low) / teacher, or teacher / (teacher + high) for error metrics."""
    low, high = paired.get("interval") or (None, None)
    if low is None or high is None or not teacher_score:
        return None
    if metric in ("mse", "mae"):
        return teacher_score / (teacher_score + high) if teacher_score + high > 0 else None
    return (teacher_score + low) / teacher_score
