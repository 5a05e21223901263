"""Embedding models (sentence-transformers and encoders with a pooling): load, distil, evaluate, save."""

from distilkit.embeddings.model import (
    POOLINGS,
    EmbeddingModel,
    load_embedding_model,
    pool,
    save_sentence_transformer,
)

__all__ = ["POOLINGS", "EmbeddingModel", "load_embedding_model", "pool", "save_sentence_transformer"]
