"""`distilkit evaluate` for embedding models: retrieval scores with their intervals, and the paired comparison.

An embedding model (a sentence-transformers folder, or a run folder holding one) is scored on a retrieval task
(embeddings/retrieval.py): the built-in bbc-news title → article search (`--data bbc-news`, the titles of
`--eval-split`), or a file of (query, positive) rows. Each score is a mean over queries; its 95% interval is a
percentile bootstrap over queries, and `--compare TEACHER` adds the paired difference in nDCG@10 on the same
queries (the same resamples for both models) and the retention, this model's nDCG@10 as a share of the other's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from distilkit.console import show
from distilkit.data import builtin
from distilkit.embeddings.labelled import LabelledTexts, bbc_news_topics, classify, cluster
from distilkit.embeddings.retrieval import (
    METRICS,
    RetrievalTask,
    bbc_news_titles,
    from_rows,
    per_query_scores,
    similarities,
)
from distilkit.errors import DistilkitError
from distilkit.evaluation.intervals import RESAMPLES, SEED, Units, classification_units, compare, describe, intervals
from distilkit.evaluation.options import EvaluateConfig
from distilkit.inference.embedding import is_embedding_model, load_embedder

HEADLINE = "ndcg@10"


def embedding_tasks(cfg: EvaluateConfig) -> tuple[RetrievalTask | None, LabelledTexts | None]:
    """The tasks of --data / --test-file: bbc-news (built in: title → article retrieval, and topic classification
    and clustering of the articles), a (query, positive) file (retrieval) or a file of labelled texts."""
    source = cfg.test_file or cfg.data or "bbc-news"
    if not isinstance(source, str):
        raise DistilkitError("evaluate --task embedding reads a file or bbc-news: give --data as a path")
    if source == "bbc-news":
        return bbc_news_titles(cfg.eval_split), bbc_news_topics()
    if builtin.is_builtin(source):
        raise DistilkitError(f"--data {source}: no embedding task is built from it; use bbc-news or your own file")
    from distilkit.data.readers import read_file

    path = Path(source)
    if not path.is_file():
        raise DistilkitError(f"--data {source}: no such file (JSONL/CSV/TSV of query and positive, or text and label)")
    rows = read_file(path, cfg.format)
    if not rows:
        raise DistilkitError(f"--data {source}: no rows")
    positive = cfg.text_pair_column or "positive"
    if positive not in rows[0] and cfg.label_column in rows[0]:
        return None, labelled_rows(rows, cfg, source)
    query = cfg.text_column if cfg.text_column in rows[0] or "query" not in rows[0] else "query"
    return from_rows(rows, query, positive, source), None


def labelled_rows(rows: list[dict], cfg: EvaluateConfig, source: str) -> LabelledTexts:
    for i, row in enumerate(rows, 1):
        if not str(row.get(cfg.text_column) or "").strip() or row.get(cfg.label_column) in (None, ""):
            columns = f"a text ({cfg.text_column!r}) and a label ({cfg.label_column!r})"
            raise DistilkitError(f"{source}: row {i} needs {columns}")
    texts, labels = [str(r[cfg.text_column]) for r in rows], [str(r[cfg.label_column]) for r in rows]
    return LabelledTexts(f"{source}: {len(rows)} labelled texts (5-fold)", texts, labels)


def retrieval_units(scores: dict[str, np.ndarray]) -> Units:
    """Per-query scores as `Units` (a column per metric and a count), so the bootstrap of intervals.py applies."""
    table = np.column_stack([scores[m] for m in METRICS] + [np.ones(len(scores[METRICS[0]]))])
    metrics = {m: (lambda t, i=i: t[:, i] / t[:, -1]) for i, m in enumerate(METRICS)}
    return Units("queries", table, metrics)


def retrieval_scores(model, tokenizer, task: RetrievalTask, length: int, batch: int) -> tuple[dict, Units, object]:
    """A model's retrieval scores on `task` with their intervals, the per-query units, and the document vectors."""
    queries = model.encode(task.queries, tokenizer, length, batch)
    documents = model.encode(task.documents, tokenizer, length, batch)
    units = retrieval_units(per_query_scores(similarities(queries, documents), task.relevant))
    return {**{k: round(v, 4) for k, v in units.point().items()}, "intervals": intervals(units)}, units, documents


def score(name: str, tasks: tuple, cfg: EvaluateConfig) -> tuple[dict, dict[str, Units]]:
    """One model's scores on the tasks (each text read up to the model's own maximum length, or --max-length), with
    their intervals; and the units of retrieval and classification, for the paired comparison."""
    retrieval, labelled = tasks
    model, tokenizer, length = load_embedder(name)
    length = cfg.max_length or length
    metrics: dict = {"max_length": length}
    units: dict[str, Units] = {}
    documents = None
    if retrieval is not None:
        found, units[HEADLINE], documents = retrieval_scores(model, tokenizer, retrieval, length, cfg.batch_size)
        metrics.update(found)
    if labelled is not None:
        same = documents is not None and retrieval.documents == labelled.texts  # bbc-news: the same articles
        vectors = (documents if same else model.encode(labelled.texts, tokenizer, length, cfg.batch_size)).numpy()
        gold, predicted = classify(vectors, labelled)
        units["accuracy"] = classification_units(gold, predicted, len(set(labelled.labels)))
        found = {k: round(v, 4) for k, v in units["accuracy"].point().items()}
        metrics["classification"] = {**found, "intervals": intervals(units["accuracy"]), "examples": len(gold)}
        metrics["clustering"] = v_measure(*cluster(vectors, labelled))
    return metrics, units


def v_measure(gold, clusters) -> dict:
    """The V-measure of the clusters, with its percentile bootstrap interval over the texts."""
    from scipy.stats import bootstrap
    from sklearn.metrics import v_measure_score

    value = float(v_measure_score(gold, clusters))
    ci = bootstrap(
        (gold, clusters),
        v_measure_score,
        paired=True,
        vectorized=False,
        n_resamples=RESAMPLES,
        method="percentile",
        random_state=np.random.default_rng(SEED),
    ).confidence_interval
    return {
        "v_measure": round(value, 4),
        "interval": [round(float(ci.low), 4), round(float(ci.high), 4)],
        "examples": len(gold),
    }


def score_table(name: str, metrics: dict, tasks: tuple) -> str:
    retrieval, labelled = tasks
    lines = [f"{name}", f"{'metric':<22}{'value':>8}   95% interval"]

    def line(label: str, value: float, interval) -> None:
        low, high = interval or (None, None)
        lines.append(f"{label:<22}{value:>8.4f}   " + (f"[{low:.4f}, {high:.4f}]" if low is not None else ""))

    if retrieval is not None:
        lines.append(f"retrieval: {retrieval.name} (intervals over queries)")
        for m in METRICS:
            line(m, metrics[m], metrics["intervals"].get(m))
    if labelled is not None:
        found = metrics["classification"]
        lines.append(f"classification and clustering: {labelled.name} ({found['examples']} texts scored)")
        for m in ("accuracy", "macro_f1"):
            line(m, found[m], found["intervals"].get(m))
        line("v_measure (k-means)", metrics["clustering"]["v_measure"], metrics["clustering"]["interval"])
    return "\n".join(lines)


def evaluate_embedding(cfg: EvaluateConfig) -> dict:
    """Score `cfg.model` on the embedding tasks; with --compare, the paired difference in the headline score (nDCG@10,
    or accuracy without a retrieval task) and the retention."""
    from distilkit.evaluation.evaluate import check_evaluation_output, write_evaluation

    if cfg.output:
        check_evaluation_output(Path(cfg.output), cfg.overwrite)
    for option, name in (("--model", cfg.model), ("--compare", cfg.compare)):
        if name and not is_embedding_model(name):
            raise DistilkitError(
                f"{option} {name}: not an embedding model (no sentence-transformers modules.json in it or in its "
                "model/); compare an embedding model with another one"
            )
    tasks = embedding_tasks(cfg)
    metrics, units = score(cfg.model, tasks, cfg)
    headline = HEADLINE if HEADLINE in units else "accuracy"
    metrics.update(task="embedding", data=" + ".join(t.name for t in tasks if t is not None))
    table = score_table(cfg.model, metrics, tasks)
    if cfg.compare:
        other, other_units = score(cfg.compare, tasks, cfg)
        paired = compare(other_units[headline], units[headline], headline)
        theirs = other[headline] if headline in other else other["classification"][headline]
        ours = metrics[headline] if headline in metrics else metrics["classification"][headline]
        metrics["paired"] = {**paired, "compared_with": cfg.compare, "compared_score": theirs}
        metrics["compared"] = {k: v for k, v in other.items() if k != "intervals"}
        metrics["retention"] = round(ours / theirs, 4) if theirs else None
        table += (
            f"\n\nthis model − {cfg.compare} ({theirs:.4f}) on the same {paired['unit']}: {describe(paired)}"
            f"\nretention of {headline}: {100 * metrics['retention']:.1f}%"
        )
    show(json.dumps(metrics, indent=2) if cfg.json else table)
    if cfg.output:
        write_evaluation(Path(cfg.output), metrics, table, cfg.json)
    return metrics
