"""`distilkit prune` for embedding models: heads and FFN neurons removed by how little the sentence vectors need them.

An embedding model has no labels to take a loss from, and its distance to its own unpruned output has zero gradient
at the unpruned point, so a head or neuron gate g is scored by how much the sentence vectors e_i move with it:

    score(g) = Σ_batches |∂(Σ_i r_i · e_i)/∂g|,   r_i ~ N(0, I) drawn afresh for every batch

The gradient is a random projection of the Jacobian ∂e_i/∂g, so E|score| ∝ sqrt(Σ_i ‖∂e_i/∂g‖²): the first-order
change of the vectors when g goes (a Hutchinson-style estimate; the gates, removal and per-layer normalisation are
compress/pruning.py's, as for classifiers). Importance is scored on the training texts (--importance-samples of
them), and the pruned model is measured against the unpruned one on the dev texts: the mean cosine of their
vectors and the Spearman agreement of their pairwise similarities (distill --task embedding's measure).
The texts are those `distill --task embedding` reads (--data: a text file, JSONL/CSV, folder, or bbc-news).

The output is a sentence-transformers folder; a structurally pruned encoder carries its shapes in config.json
and distilkit's loader code beside it (models/pruned.py; embeddings/model.py saves it), so sentence-transformers
loads it with `trust_remote_code=True` and distilkit without (it builds the pruned shapes itself).
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from distilkit.compress import pruning
from distilkit.compress.options import PruneConfig
from distilkit.compress.prune import remove_structures, size_summary
from distilkit.config import options_of
from distilkit.console import show
from distilkit.distillation.embedding import load_texts, similarity_agreement
from distilkit.embeddings.model import EmbeddingModel, load_embedding_model, save_sentence_transformer
from distilkit.errors import DistilkitError
from distilkit.hub.card_kinds import prune_card
from distilkit.runs import RunFolder

DEV_TEXTS = 500  # the dev texts the pruned model is measured on (at most)


def projected_vectors(model: EmbeddingModel, batch: dict) -> torch.Tensor:
    """Σ_i r_i · e_i with r_i ~ N(0, I): its gradient with respect to a gate is a random projection of how the
    sentence vectors move with that gate (the module docstring)."""
    vectors = model(**batch).logits.float()
    return (vectors * torch.randn_like(vectors)).sum()


def text_batches(texts: list[str], tokenizer, max_length: int, batch_size: int):
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        yield dict(tokenizer(chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt"))


def check_embedding_prune(cfg: PruneConfig) -> None:
    """What an embedding model's pruning cannot do, in one line each, before any model loads."""
    if cfg.recover != "none":
        raise DistilkitError(
            f"--recover {cfg.recover} with an embedding model: not wired yet; recover by distilling the pruned "
            "model from the unpruned one: distilkit distill --task embedding --teacher MODEL --student OUTPUT/model"
        )
    if (cfg.importance_split, cfg.eval_split) != ("dev", "test"):
        raise DistilkitError(
            "--importance-split/--eval-split with an embedding model: its texts have a train and a dev part only "
            "(importance from train, measured on dev); leave both at their defaults"
        )
    if not (cfg.data or cfg.train_file):
        raise DistilkitError(
            f"{cfg.model}: no texts to score importance on; pass --data (a text file, JSONL/CSV with --text-column, "
            "or bbc-news)"
        )


def prune_embedding(cfg: PruneConfig, resolved: dict | None = None) -> Path:
    check_embedding_prune(cfg)
    run = RunFolder(cfg.output, cfg.overwrite, resumable=False, what="pruned model")
    run.check()
    model, tokenizer, _ = load_embedding_model(cfg.model, None, "--model")
    model.eval()
    length = cfg.max_length or model.reading_length(tokenizer)
    pruning.paths_for(model, heads=bool(cfg.heads))
    metrics = prune_and_measure(model, tokenizer, cfg, length)
    before, after = metrics["before"], metrics["pruned"]
    if (
        after["attention_heads"] != before["attention_heads"]
        or after["intermediate_sizes"] != before["intermediate_sizes"]
    ):
        model.config.distilkit_pruning = pruning.shape_summary(model)  # saved with the loader file beside it
    work = run.prepare()
    try:
        save_sentence_transformer(model, tokenizer, work / "model")
        config = {**(resolved or options_of(cfg)), "task": "embedding"}
        run.write_results(metrics, config)
        prune_card(work, config, metrics, PruneConfig)
        final = run.finish()
    except BaseException as err:
        run.fail(err)
    show(f"heads per layer: {before['attention_heads']} → {after['attention_heads']}")
    show(f"FFN width per layer: {before['intermediate_sizes']} → {after['intermediate_sizes']}")
    show(f"parameters: {before['parameters']:,} → {after['parameters']:,}")
    show(
        f"against the unpruned model on {metrics['evaluated_on']}: mean cosine {after['cosine_to_unpruned']:.4f}, "
        f"pairwise similarities ranked alike with Spearman {after['similarity_spearman']:.4f}"
    )
    show(f"written: {final} (sentence-transformers model in {final / 'model'})")
    return final


def prune_and_measure(model: EmbeddingModel, tokenizer, cfg: PruneConfig, length: int) -> dict:
    """Score and remove heads / neurons on the training texts, sparsify, and measure the result against the
    unpruned model on the dev texts; metrics.json's content."""
    source = cfg.data or cfg.train_file
    texts = load_texts(cfg)
    train = list(texts["train"]["text"])
    important = random.Random(cfg.seed).sample(train, min(cfg.importance_samples, len(train)))
    dev = list(texts["dev"]["text"])[:DEV_TEXTS] if "dev" in texts else []
    if len(dev) < 3:
        raise DistilkitError(f"--data {source}: fewer than 3 dev texts to measure the pruning on")
    before = size_summary(model)
    original = model.encode(dev, tokenizer, length, cfg.batch_size)
    head_spec = pruning.parse_head_spec(cfg.heads, before["attention_heads"]) if cfg.heads else (None, None)
    torch.manual_seed(cfg.seed)
    batches = text_batches(important, tokenizer, length, cfg.batch_size)
    removed = remove_structures(model, batches, head_spec, cfg, projected_vectors)
    masks = pruning.sparsify(model, cfg.sparsity, cfg.budget) if cfg.sparsity else None
    after = size_summary(model)
    if masks is not None:
        after.update(pruning.sparsity_report(model))
    return {
        "task": "embedding",
        "before": {"cosine_to_unpruned": 1.0, "similarity_spearman": 1.0, **before},
        "pruned": {**agreement(original, model.encode(dev, tokenizer, length, cfg.batch_size)), **after},
        "evaluated_on": f"{source} (dev, {len(dev)} examples)",
        "importance_from": f"{source} (train, {len(important)} examples)",
        "importance": "first-order change of the sentence vectors (random projections of their Jacobian)",
        "macs_ratio": after["encoder_macs_per_token_seq128"] / before["encoder_macs_per_token_seq128"],
        **removed,
    }


def agreement(original: torch.Tensor, pruned: torch.Tensor) -> dict:
    cosine = torch.nn.functional.cosine_similarity(original, pruned).mean()
    return {
        "cosine_to_unpruned": round(float(cosine), 4),
        "similarity_spearman": round(similarity_agreement(original, pruned), 4),
    }
