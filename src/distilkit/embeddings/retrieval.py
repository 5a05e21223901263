"""Retrieval with an embedding model, scored per query as MTEB and BEIR score it.

A task is queries, documents and, per query, the documents that answer it. Every query is ranked against every
document by cosine similarity; per query (R = its relevant documents, rank_i = the rank of the i-th document shown):

    nDCG@10   = Σ_{relevant i ≤ 10} 1/log2(rank_i + 1)  /  Σ_{j=1}^{min(R,10)} 1/log2(j + 1)   (binary gains)
    MRR@10    = 1/rank of the first relevant document, 0 when it is below 10
    recall@k  = |relevant in the top k| / R                        (k = 1, 10, 100)

and a score is the mean over queries; the intervals resample queries (evaluation/embedding.py). nDCG and recall come
from pytrec_eval, as in MTEB's retrieval evaluator (mteb itself is not a dependency: importing it takes seconds, for
a function of pytrec_eval and ten lines).

Built in: bbc-news title → article. Queries are the titles of one split's articles, documents the bodies of
every article (2,125, titles removed), so the test titles are searched among all articles, the distractors
included; distillation on bbc-news reads the training texts only. Or a file of (query, positive) rows: the
documents are the distinct positives, and a query may have several.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from distilkit.errors import DistilkitError

METRICS = ("ndcg@10", "mrr@10", "recall@1", "recall@10", "recall@100")
TOP = 100  # documents ranked per query: the deepest cut a metric reads


@dataclass
class RetrievalTask:
    name: str
    queries: list[str]
    documents: list[str]
    relevant: list[list[int]]  # per query, the indices of the documents that answer it


def per_query_scores(similarity: torch.Tensor, relevant: list[list[int]]) -> dict[str, np.ndarray]:
    """Each metric of METRICS for each query, from its similarities to every document [queries, documents]:
    nDCG@10 and recall@k by pytrec_eval (the TREC evaluator MTEB and BEIR score with) on each query's TOP
    documents, MRR@10 as MTEB computes it (pytrec_eval has no cut-off reciprocal rank)."""
    import pytrec_eval

    k = min(TOP, similarity.shape[1])
    top = similarity.topk(k, dim=1)
    values, ranked = top.values.numpy(), top.indices.numpy()
    run = {str(q): {str(d): float(v) for d, v in zip(ranked[q], values[q])} for q in range(len(relevant))}
    qrels = {str(q): {str(d): 1 for d in answers} for q, answers in enumerate(relevant)}
    found = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.1,10,100"}).evaluate(run)
    out = {name: np.zeros(len(relevant)) for name in METRICS}
    for q, answers in enumerate(relevant):
        scores = found[str(q)]
        out["ndcg@10"][q] = scores["ndcg_cut_10"]
        for cut in (1, 10, 100):
            out[f"recall@{cut}"][q] = scores[f"recall_{cut}"]
        hits = np.isin(ranked[q][:10], answers)
        out["mrr@10"][q] = 1.0 / (int(np.argmax(hits)) + 1) if hits.any() else 0.0
    return out


def similarities(query_vectors: torch.Tensor, document_vectors: torch.Tensor) -> torch.Tensor:
    """Cosine similarities [queries, documents] (vectors are normalised here, whatever the model does)."""
    q = torch.nn.functional.normalize(query_vectors.float(), dim=-1)
    d = torch.nn.functional.normalize(document_vectors.float(), dim=-1)
    return q @ d.T


def bbc_news_titles(split: str) -> RetrievalTask:
    """Titles of `split`'s articles → the bodies of all articles."""
    from distilkit.data import builtin

    splits = builtin.bbc_news_titled()
    documents = [r for s in ("train", "dev", "test") for r in splits[s]]
    where = {r["group"]: i for i, r in enumerate(documents)}
    queries = splits[split]
    return RetrievalTask(
        f"bbc-news titles → articles ({split} titles, {len(documents)} articles)",
        [r["title"] for r in queries],
        [r["body"] for r in documents],
        [[where[r["group"]]] for r in queries],
    )


def from_rows(rows: list[dict], query_column: str, positive_column: str, where: str) -> RetrievalTask:
    """Rows of (query, positive): the documents are the distinct positives; a query's rows are its answers."""
    documents: dict[str, int] = {}
    answers: dict[str, list[int]] = {}
    for column in (query_column, positive_column):
        if rows and column not in rows[0]:
            found = ", ".join(k for k in rows[0] if not k.startswith("_"))
            raise DistilkitError(
                f"{where}: no {column!r} column (columns: {found}); a retrieval file needs a query and its "
                "positive per row: name them with --text-column and --text-pair-column"
            )
    for i, row in enumerate(rows, 1):
        query, positive = row.get(query_column), row.get(positive_column)
        if not isinstance(query, str) or not query.strip():
            raise DistilkitError(f"{where}: row {i} has no query in column {query_column!r}")
        if not isinstance(positive, str) or not positive.strip():
            raise DistilkitError(
                f"{where}: row {i} (query {query[:40]!r}) has no positive in column {positive_column!r}; every query "
                "needs the text that answers it"
            )
        index = documents.setdefault(positive, len(documents))
        answers.setdefault(query, [])
        if index not in answers[query]:
            answers[query].append(index)
    if not answers:
        raise DistilkitError(f"{where}: no rows")
    return RetrievalTask(
        f"{where}: {len(answers)} queries, {len(documents)} documents",
        list(answers),
        list(documents),
        list(answers.values()),
    )
