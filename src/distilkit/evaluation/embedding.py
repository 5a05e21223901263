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
from distilkit.embeddings.retrieval import (
    METRICS,
    RetrievalTask,
    bbc_news_titles,
    from_rows,
    per_query_scores,
    similarities,
)
from distilkit.errors import DistilkitError
from distilkit.evaluation.intervals import Units, compare, describe, intervals
from distilkit.evaluation.options import EvaluateConfig
from distilkit.inference.embedding import is_embedding_model, load_embedder

HEADLINE = "ndcg@10"


def retrieval_task(cfg: EvaluateConfig) -> RetrievalTask:
    """The task of --data / --test-file: bbc-news (built in), or a (query, positive) file."""
    source = cfg.test_file or cfg.data or "bbc-news"
    if not isinstance(source, str):
        raise DistilkitError("evaluate --task embedding reads a retrieval file or bbc-news: give --data as a path")
    if source == "bbc-news":
        return bbc_news_titles(cfg.eval_split)
    if builtin.is_builtin(source):
        raise DistilkitError(f"--data {source}: no retrieval task is built from it; use bbc-news or a query file")
    from distilkit.data.readers import read_file

    path = Path(source)
    if not path.is_file():
        raise DistilkitError(f"--data {source}: no such file (a JSONL/CSV/TSV of query and positive columns)")
    rows = read_file(path, cfg.format)
    if not rows:
        raise DistilkitError(f"--data {source}: no rows")
    query = cfg.text_column if cfg.text_column in rows[0] or "query" not in rows[0] else "query"
    return from_rows(rows, query, cfg.text_pair_column or "positive", source)


def retrieval_units(scores: dict[str, np.ndarray]) -> Units:
    """Per-query scores as `Units` (a column per metric and a count), so the bootstrap of intervals.py applies."""
    table = np.column_stack([scores[m] for m in METRICS] + [np.ones(len(scores[METRICS[0]]))])
    metrics = {m: (lambda t, i=i: t[:, i] / t[:, -1]) for i, m in enumerate(METRICS)}
    return Units("queries", table, metrics)


def score(name: str, task: RetrievalTask, cfg: EvaluateConfig) -> tuple[dict, Units]:
    """One model's retrieval scores on `task` (each text read up to the model's own maximum length, or
    --max-length), with their intervals."""
    model, tokenizer, length = load_embedder(name)
    length = cfg.max_length or length
    queries = model.encode(task.queries, tokenizer, length, cfg.batch_size)
    documents = model.encode(task.documents, tokenizer, length, cfg.batch_size)
    units = retrieval_units(per_query_scores(similarities(queries, documents), task.relevant))
    point = {k: round(v, 4) for k, v in units.point().items()}
    return {**point, "intervals": intervals(units), "max_length": length}, units


def evaluate_embedding(cfg: EvaluateConfig) -> dict:
    """Score `cfg.model` on the retrieval task; with --compare, the paired difference and the retention."""
    from distilkit.evaluation.evaluate import check_evaluation_output, write_evaluation

    if cfg.output:
        check_evaluation_output(Path(cfg.output), cfg.overwrite)
    for option, name in (("--model", cfg.model), ("--compare", cfg.compare)):
        if name and not is_embedding_model(name):
            raise DistilkitError(
                f"{option} {name}: not an embedding model (no sentence-transformers modules.json in it or in its "
                "model/); compare an embedding model with another one"
            )
    task = retrieval_task(cfg)
    metrics, units = score(cfg.model, task, cfg)
    metrics.update(task="embedding", data=task.name, queries=len(task.queries), documents=len(task.documents))
    lines = [f"{cfg.model} on {task.name}", f"{'metric':<12}{'value':>8}   95% interval (over queries)"]
    for m in METRICS:
        low, high = metrics["intervals"].get(m, [None, None])
        span = f"[{low:.4f}, {high:.4f}]" if low is not None else ""
        lines.append(f"{m:<12}{metrics[m]:>8.4f}   {span}")
    table = "\n".join(lines)
    if cfg.compare:
        other, other_units = score(cfg.compare, task, cfg)
        paired = compare(other_units, units, HEADLINE)
        metrics["paired"] = {**paired, "compared_with": cfg.compare, "compared_score": other[HEADLINE]}
        metrics["retention"] = round(metrics[HEADLINE] / other[HEADLINE], 4) if other[HEADLINE] else None
        table += (
            f"\n\nthis model − {cfg.compare} ({other[HEADLINE]:.4f}) on the same queries: {describe(paired)}"
            f"\nretention of {HEADLINE}: {100 * metrics['retention']:.1f}%"
        )
    show(json.dumps(metrics, indent=2) if cfg.json else table)
    if cfg.output:
        write_evaluation(Path(cfg.output), metrics, table, cfg.json)
    return metrics
