"""Embedding models: an encoder, a pooling over its tokens and an optional L2 normalisation.

A sentence-transformers folder (modules.json: Transformer → Pooling → Normalize) is read by sentence-transformers
itself, so every version of its format loads; a plain encoder folder or hub id becomes an embedding model with
`pooling` (mean, cls or max). `EmbeddingModel` is a torch module whose forward gives the sentence embedding as
`logits`, so the distiller treats it as it treats a classifier's output (the teacher cache stores it, the
sentence losses read it), and the encoder's hidden states for the layer-wise losses. Saved, it is a
sentence-transformers folder again: `SentenceTransformer(path)` loads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import numpy as np
import torch
from torch import nn
from transformers.utils import ModelOutput

from distilkit.config import Pooling
from distilkit.errors import DistilkitError
from distilkit.models import load_tokenizer, resolve_model

POOLINGS = ("mean", "cls", "max")
if POOLINGS != get_args(Pooling):  # --pooling offers config.Pooling (spelt there so --help imports no torch)
    raise ImportError(f"POOLINGS {POOLINGS} and config.Pooling {get_args(Pooling)} differ; keep them equal")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
CLASSIFIER_SUFFIXES = ("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """One vector per text from token states [b, n, d] and the attention mask [b, n]:
    mean = Σ_i m_i·h_i / Σ_i m_i, cls = h_0, max = max_i over real tokens (padding set to −∞ first)."""
    if mode == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(weights == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1e-9)


@dataclass
class EmbeddingOutput(ModelOutput):
    """The sentence embeddings (as `logits`, the field the distiller and the cache read) and the encoder's
    hidden states when asked for."""

    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class EmbeddingModel(nn.Module):
    """encoder → pool(mode) → optional L2 normalisation; `config` is the encoder's."""

    distilkit_embedding = True  # distillation/planning.py reads it: the task is `embedding`

    def __init__(self, encoder: nn.Module, pooling: str = "mean", normalize: bool = True, max_seq_length: int = 0):
        super().__init__()
        if pooling not in POOLINGS:
            raise DistilkitError(f"--pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")
        self.encoder = encoder
        self.pooling = pooling
        self.normalize = normalize
        self.max_seq_length = max_seq_length  # the source folder's, kept when saved (0: the tokenizer's)
        self.config = encoder.config

    @property
    def width(self) -> int:
        return int(self.config.hidden_size)

    @property
    def cache_identity(self) -> str:
        """What the teacher cache's key adds to the weights: the same encoder pooled otherwise gives other outputs."""
        return f"pooling={self.pooling},normalize={self.normalize}"

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, output_hidden_states=False, **_):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        out = self.encoder(**inputs, output_hidden_states=output_hidden_states)
        vectors = pool(out.last_hidden_state, attention_mask, self.pooling)
        if self.normalize:
            vectors = nn.functional.normalize(vectors.float(), dim=-1).to(vectors.dtype)
        return EmbeddingOutput(logits=vectors, hidden_states=out.hidden_states if output_hidden_states else None)

    def set_attn_implementation(self, name: str) -> None:
        self.encoder.set_attn_implementation(name)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    @torch.no_grad()
    def encode(self, texts: list[str], tokenizer, max_length: int, batch_size: int = 64) -> torch.Tensor:
        """Embeddings of `texts` [len, width] in fp32, in the order given."""
        self.eval()
        device = next(self.parameters()).device

        def vectors_of(inputs: dict) -> torch.Tensor:
            return self(**{k: torch.from_numpy(v).to(device) for k, v in inputs.items()}).logits.float().cpu()

        return encode_in_batches(texts, tokenizer, max_length, batch_size, self.width, vectors_of)


def encode_in_batches(texts: list[str], tokenizer, max_length: int, batch_size: int, width: int, vectors_of):
    """[len(texts), width] fp32 vectors in the order given, from `vectors_of(int64 inputs) -> [batch, width]` run on
    batches sorted by length (little padding); the torch and ONNX embedders share it."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), width)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = tokenizer(
            [texts[i] for i in chunk], truncation=True, max_length=max_length, padding=True, return_tensors="np"
        )
        out[chunk] = vectors_of({k: v.astype(np.int64) for k, v in batch.items() if k in INPUTS})
    return out


def is_sentence_transformers_folder(path: str | Path) -> bool:
    return (Path(path) / "modules.json").is_file()


def _architecture(path: str) -> str:
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return ""
    return (config.get("architectures") or [""])[0]


def load_embedding_model(name_or_path: str, pooling: str | None = None, option: str = "--teacher"):
    """(EmbeddingModel, tokenizer, how it was read) from a sentence-transformers folder, or from a plain encoder
    folder / hub id with `pooling`. A classifier, an unknown pooling or a sentence-transformers pipeline with
    modules distilkit cannot reproduce (Dense, ...) is one error line."""
    path = resolve_model(name_or_path)
    if pooling is not None and pooling not in POOLINGS:
        raise DistilkitError(f"--pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")
    arch = _architecture(path)
    if arch.endswith(CLASSIFIER_SUFFIXES):
        raise DistilkitError(
            f"{option} {name_or_path}: a classifier ({arch}), not an embedding model; give a sentence-transformers "
            "folder or an encoder with --pooling mean|cls|max, or drop --task embedding to distil the classifier"
        )
    if is_sentence_transformers_folder(path):
        return _from_sentence_transformers(path, name_or_path, pooling, option)
    if pooling is None:
        raise DistilkitError(
            f"{option} {name_or_path}: not a sentence-transformers folder (no modules.json); say how to pool its "
            "token states into one vector: --pooling mean|cls|max"
        )
    from transformers import AutoModel

    try:
        encoder = AutoModel.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise DistilkitError(f"{option} {name_or_path}: cannot load the encoder ({str(err).splitlines()[0]})") from None
    model = EmbeddingModel(encoder, pooling, normalize=True)
    return model, load_tokenizer(path), f"encoder, {pooling} pooling, normalised"


def _from_sentence_transformers(path: str, name: str, pooling: str | None, option: str):
    from sentence_transformers import SentenceTransformer

    try:
        st = SentenceTransformer(path, device="cpu", local_files_only=True)
    except Exception as err:  # noqa: BLE001 - sentence-transformers' own errors, said in one line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DistilkitError(f"{option} {name}: cannot load the sentence-transformers folder ({first})") from None
    kinds = [type(module).__name__ for module in st]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        raise DistilkitError(
            f"{option} {name}: its modules are {' → '.join(kinds)}; distilkit distils Transformer → Pooling "
            "[→ Normalize] models"
        )
    mode = st[1].get_config_dict().get("pooling_mode", "mean")
    mode = mode[0] if isinstance(mode, (list, tuple)) and len(mode) == 1 else mode
    if pooling is not None and pooling != mode:
        mode = pooling  # the user's choice wins, and is said below
    if mode not in POOLINGS:
        raise DistilkitError(
            f"{option} {name}: pooling {mode!r} is not one distilkit reproduces; choose --pooling mean|cls|max"
        )
    normalize = "Normalize" in kinds
    model = EmbeddingModel(st[0].auto_model, mode, normalize, int(st.max_seq_length or 0))
    how = f"sentence-transformers, {mode} pooling" + (", normalised" if normalize else "")
    return model, load_tokenizer(path), how


def save_sentence_transformer(model: EmbeddingModel, tokenizer, folder: Path) -> None:
    """Write `model` as a sentence-transformers folder (modules.json, the encoder and tokenizer at the top,
    1_Pooling, 2_Normalize), by sentence-transformers itself, so that `SentenceTransformer(folder)` loads it."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    folder = Path(folder)
    model.encoder.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    length = model.max_seq_length or None
    modules: list[nn.Module] = [
        Transformer(str(folder), max_seq_length=length),
        Pooling(model.width, pooling_mode=model.pooling),
    ]
    if model.normalize:
        modules.append(Normalize())
    SentenceTransformer(modules=modules, device="cpu").save(str(folder), create_model_card=False)
