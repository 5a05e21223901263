"""The served embedding model: the same batcher and limits as a classifier, vectors instead of labels.

`/embed` follows text-embeddings-inference's route: `{"inputs": str | [str], "normalize": true, "truncate": false}`
→ one vector per input. The vectors are pooled as the model pools; `normalize` (default true) scales each to unit
length; without `truncate`, a text over the model's maximum length is refused (413) rather than cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distilkit.inference.embedding import OnnxEmbedder, embedding_folder, load_embedder, pooled_vectors, tokenized
from distilkit.inference.onnx_model import read_meta
from distilkit.serving.engine import UnreadableText, weights_size


class TooLong(ValueError):
    """A text over the maximum length with `truncate: false`: the request's (413)."""


@dataclass
class Served:
    """What the app reads of any served model (`engine.trained`)."""

    path: str
    task: str = "embedding"


class EmbeddingEngine:
    def __init__(self, model, tokenizer, max_length: int, path: str):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.trained = Served(path)

    @classmethod
    def load(cls, model: str, max_length: int | None = None) -> "EmbeddingEngine":
        loaded, tokenizer, length = load_embedder(model)
        return cls(loaded, tokenizer, max_length or length, embedding_folder(model))

    @property
    def backend(self) -> str:
        return "onnx" if isinstance(self.model, OnnxEmbedder) else "torch"

    def predict(self, rows: list[dict]) -> list[dict]:
        """One {"embedding": [...]} per row {"text", "normalize", "truncate"} (the batcher's call)."""
        texts = [r["text"] for r in rows]
        try:
            inputs, cut = tokenized(self.tokenizer, texts, self.max_length)
        except Exception as err:  # noqa: BLE001 - the tokenizer's errors have no common class
            raise UnreadableText(f"the tokenizer could not read them ({type(err).__name__}: {err})") from err
        for row, was_cut in zip(rows, cut):
            if was_cut and not row.get("truncate", False):  # counted again only to say by how much
                count = len(self.tokenizer(row["text"], verbose=False)["input_ids"])
                raise TooLong(
                    f"an input has {count} tokens; this model reads at most {self.max_length}: send shorter texts "
                    'or "truncate": true'
                )
        vectors = pooled_vectors(self.model, inputs)
        out = []
        for row, vector in zip(rows, vectors):
            if row.get("normalize", True):
                vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
            out.append({"embedding": vector.astype(float).tolist()})
        return out

    def warm_up(self) -> None:
        self.predict([{"text": "warm up the model", "truncate": True}])

    def metadata(self) -> dict:
        info = {
            "model": self.trained.path,
            "task": "embedding",
            "labels": [],
            "regression": False,
            "backend": self.backend,
            "size_bytes": weights_size(self.trained.path),
            "max_length": self.max_length,
            "dimensions": int(self.model.width),
        }
        if self.backend == "onnx":
            info["quantization"] = read_meta(Path(self.trained.path)).get("quantization")
        else:
            info["parameters"] = sum(p.numel() for p in self.model.parameters())
        return info
