"""`distilkit run` with `data: {task: embedding}`: the pipeline's teacher and evaluate stages for embedding models.

The teacher is an embedding model used as it is (there are no labels to fine-tune it on): `teacher: {model: NAME}`
names a sentence-transformers folder, a packaged alias or a hub id (`run:` a folder as well). The students are
`distill --task embedding` runs, the prune/export/quantize/bench stages are the usual ones (each command knows an
embedding model), and evaluate scores every model on retrieval (evaluation/embedding.py; run.py pairs each with
the teacher on the same queries): bbc-news's test titles → its articles when `data` is bbc-news, or the (query,
positive) rows of `data.test_file`, so that the report ranks them by nDCG@10 and its retention as it ranks
classifiers by accuracy.
"""

from __future__ import annotations

from pathlib import Path

from distilkit.errors import DistilkitError


def embedding_teacher(section: dict, recipe_path: str) -> Path:
    """The teacher's folder: `teacher.model` or `teacher.run`, resolved; any fine-tuning option is refused."""
    from distilkit.models import resolve_model

    extra = sorted(k for k in section if k not in ("model", "run"))
    name = section.get("run") or section.get("model")
    if extra or not name:
        drop = f"; drop {', '.join(extra)}" if extra else ""
        raise DistilkitError(
            f"{recipe_path}: teacher: with data.task embedding the teacher is used as it is (no labels to fine-tune "
            f"it on): give teacher.model, a sentence-transformers folder, packaged alias or hub id{drop}"
        )
    return Path(resolve_model(str(name)))


def check_embedding_data(data: dict, recipe_path: str) -> None:
    """Evaluate needs queries with their answers: bbc-news's, or data.test_file's rows."""
    if not data.get("test_file") and data.get("data") != "bbc-news":
        raise DistilkitError(
            f"{recipe_path}: data: evaluating embedding models needs retrieval data: data.test_file with (query, "
            "positive) rows, or data: bbc-news (its test titles → articles); or leave evaluate out of stages"
        )


def embedding_scorer(data: dict):
    """The evaluate stage's `score(path) -> (metrics, per-query units, "ndcg@10")` for embedding models: retrieval
    scores with their intervals on the recipe's data (read once, here)."""
    from distilkit.evaluation.embedding import HEADLINE, embedding_tasks, score
    from distilkit.evaluation.options import EvaluateConfig

    cfg = EvaluateConfig(**data)
    tasks = embedding_tasks(cfg)
    if tasks[0] is None:
        raise DistilkitError(
            f"data.test_file {cfg.test_file}: labelled texts; the pipeline ranks embedding models by retrieval: "
            "give (query, positive) rows"
        )

    def score_model(path: Path) -> tuple[dict, object, str]:
        metrics, units = score(str(path), tasks, cfg)
        return {**metrics, "task": "embedding", "split": cfg.eval_split}, units[HEADLINE], HEADLINE

    return score_model
