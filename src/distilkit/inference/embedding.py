"""Embedding models for inference: a torch `EmbeddingModel` (embeddings/model.py) or its ONNX export.

An exported embedding folder (`distilkit export` of a sentence-transformers folder) is a sentence-transformers
folder whose `model.onnx` takes the tokenizer's inputs and gives `last_hidden_state` (the token states
sentence-transformers' ONNX backend pools itself) and `sentence_embedding` (pooled and normalised inside the
graph). Both kinds answer `encode(texts, tokenizer, max_length, batch_size)` with an fp32 tensor [texts, width].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from distilkit.embeddings.model import (
    INPUTS,
    encode_in_batches,
    is_sentence_transformers_folder,
    load_embedding_model,
    pool,
)
from distilkit.errors import DistilkitError
from distilkit.inference.onnx_model import ONNX_FILE, is_onnx_folder, onnx_feed, open_session, read_meta
from distilkit.models import load_tokenizer, resolve_model

SENTENCE_OUTPUT = "sentence_embedding"


class OnnxEmbedder:
    """An ONNX Runtime session over an exported embedding graph."""

    def __init__(self, folder: Path, threads: int | None = None):
        self.folder = Path(folder)
        self.meta = read_meta(self.folder)
        self.session = open_session(self.folder / ONNX_FILE, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if SENTENCE_OUTPUT not in outputs:
            raise DistilkitError(
                f"{self.folder / ONNX_FILE}: no {SENTENCE_OUTPUT!r} output (outputs: {', '.join(outputs)}); export the "
                "embedding model again with distilkit export"
            )
        self.width = int(self.meta["dimensions"])
        self.max_seq_length = int(self.meta.get("max_length") or 0)

    def vectors(self, batch: dict, output: str = SENTENCE_OUTPUT) -> np.ndarray:
        return self.session.run([output], onnx_feed(self.input_names, batch))[0]

    def encode(self, texts: list[str], tokenizer, max_length: int, batch_size: int = 64) -> torch.Tensor:
        def vectors_of(inputs: dict) -> torch.Tensor:
            return torch.from_numpy(self.vectors(inputs)).float()

        return encode_in_batches(texts, tokenizer, max_length, batch_size, self.width, vectors_of)


def is_embedding_onnx_folder(path) -> bool:
    if not is_onnx_folder(path):
        return False
    try:
        return read_meta(Path(path)).get("task") == "embedding"
    except DistilkitError:
        return False


def embedding_folder(name: str) -> str:
    """The folder `name` stands for (an alias, a distilkit run folder's model/, a folder); else `name` itself."""
    try:
        return resolve_model(name)
    except DistilkitError:
        return name


def is_embedding_model(name: str) -> bool:
    """A sentence-transformers folder (torch or exported), or a run folder holding one."""
    folder = embedding_folder(name)
    return is_sentence_transformers_folder(folder) or is_embedding_onnx_folder(folder)


def load_embedder(name: str, threads: int | None = None):
    """(model with .encode, tokenizer, its maximum length) of an embedding model folder, torch or ONNX."""
    folder = embedding_folder(name)
    if is_embedding_onnx_folder(folder):
        model = OnnxEmbedder(Path(folder), threads)
        return model, load_tokenizer(folder), model.max_seq_length or 512
    model, tokenizer, _ = load_embedding_model(folder, None, "--model")
    model.eval()
    return model, tokenizer, model.reading_length(tokenizer)


def tokenized(tokenizer, texts: list[str], max_length: int) -> tuple[dict, list[bool]]:
    """One padded batch of int64 inputs cut at `max_length`, and whether each text was cut (the server's
    `truncate: false` refuses those)."""
    batch = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="np")
    cut = [bool(encoding.overflowing) for encoding in batch.encodings]
    return {k: v.astype(np.int64) for k, v in batch.items() if k in INPUTS}, cut


@torch.no_grad()
def pooled_vectors(model, inputs: dict) -> np.ndarray:
    """The pooled vectors of a tokenized batch before any normalisation [texts, width]."""
    mask = torch.from_numpy(inputs["attention_mask"])
    if isinstance(model, OnnxEmbedder):
        hidden = torch.from_numpy(model.vectors(inputs, "last_hidden_state"))
        return pool(hidden, mask, model.meta["pooling"]).numpy()
    device = next(model.parameters()).device
    tensors = {k: torch.from_numpy(v).to(device) for k, v in inputs.items()}
    hidden = model.encoder(**tensors).last_hidden_state.float().cpu()
    return pool(hidden, mask, model.pooling).numpy()
