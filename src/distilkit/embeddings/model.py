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
    def base_model(self) -> nn.Module:
        """The encoder's own base model, where compress/pruning.py finds the layers (as in a HF model)."""
        return self.encoder.base_model

    @property
    def width(self) -> int:
        return int(self.config.hidden_size)

    def reading_length(self, tokenizer) -> int:
        """How many tokens of a text the model reads: its saved maximum, else the tokenizer's (at most 512)."""
        return self.max_seq_length or min(getattr(tokenizer, "model_max_length", 512), 512)

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


def _config(path: str) -> dict:
    try:
        return json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def load_embedding_model(name_or_path: str, pooling: str | None = None, option: str = "--teacher"):
    """(EmbeddingModel, tokenizer, how it was read) from a sentence-transformers folder, or from a plain encoder
    folder / hub id with `pooling`. A classifier, an unknown pooling or a sentence-transformers pipeline with
    modules distilkit cannot reproduce (Dense, ...) is one error line."""
    path = resolve_model(name_or_path)
    if pooling is not None and pooling not in POOLINGS:
        raise DistilkitError(f"--pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")
    config = _config(path)
    arch = (config.get("architectures") or [""])[0]
    if arch.endswith(CLASSIFIER_SUFFIXES):
        raise DistilkitError(
            f"{option} {name_or_path}: a classifier ({arch}), not an embedding model; give a sentence-transformers "
            "folder or an encoder with --pooling mean|cls|max, or drop --task embedding to distil the classifier"
        )
    if is_sentence_transformers_folder(path) and config.get("distilkit_pruning"):
        return _from_pruned_folder(path, name_or_path, pooling, option)
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
    mode = checked_pooling(kinds, st[1].get_config_dict(), pooling, f"{option} {name}")
    normalize = "Normalize" in kinds
    model = EmbeddingModel(st[0].auto_model, mode, normalize, int(st.max_seq_length or 0))
    how = f"sentence-transformers, {mode} pooling" + (", normalised" if normalize else "")
    return model, load_tokenizer(path), how


def checked_pooling(kinds: list[str], pooling_config: dict, pooling: str | None, where: str) -> str:
    """The pooling mode of a Transformer → Pooling [→ Normalize] pipeline (the user's `pooling` wins), or one
    error line for a pipeline distilkit cannot reproduce."""
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        raise DistilkitError(
            f"{where}: its modules are {' → '.join(kinds)}; distilkit distils Transformer → Pooling "
            "[→ Normalize] models"
        )
    mode = pooling_config.get("pooling_mode")
    if mode is None:  # the format before sentence-transformers 6: one flag per mode
        flags = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens", "max": "pooling_mode_max_tokens"}
        mode = [m for m, key in flags.items() if pooling_config.get(key)] or ["mean"]
    mode = mode[0] if isinstance(mode, (list, tuple)) and len(mode) == 1 else mode
    mode = pooling or mode  # the user's choice wins, and is said in `how`
    if mode not in POOLINGS:
        raise DistilkitError(
            f"{where}: pooling {mode!r} is not one distilkit reproduces; choose --pooling mean|cls|max"
        )
    return mode


def _from_pruned_folder(path: str, name: str, pooling: str | None, option: str):
    """A sentence-transformers folder whose encoder `distilkit prune` shrank: the encoder is built at its pruned
    shapes by distilkit's own class (models/pruned.py), so the loader code in the folder is never run, and the
    pipeline is read from the folder's JSON files."""
    from transformers import AutoConfig, AutoModel

    from distilkit.models.pruned import pruned_class

    folder = Path(path)
    modules = json.loads((folder / "modules.json").read_text())
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    pooling_file = folder / modules[1]["path"] / "config.json" if len(modules) > 1 else folder / "missing"
    pooling_config = json.loads(pooling_file.read_text()) if pooling_file.is_file() else {}
    mode = checked_pooling(kinds, pooling_config, pooling, f"{option} {name}")
    settings = folder / "sentence_bert_config.json"
    length = json.loads(settings.read_text()).get("max_seq_length") if settings.is_file() else None
    config = AutoConfig.from_pretrained(path)  # its auto_map is not followed: no trust_remote_code
    encoder = pruned_class(AutoModel._model_mapping[type(config)]).from_pretrained(path, config=config)
    normalize = "Normalize" in kinds
    model = EmbeddingModel(encoder, mode, normalize, int(length or 0))
    how = f"sentence-transformers (pruned by distilkit), {mode} pooling" + (", normalised" if normalize else "")
    return model, load_tokenizer(path), how


def save_sentence_transformer(model: EmbeddingModel, tokenizer, folder: Path) -> None:
    """Write `model` as a sentence-transformers folder (modules.json, the encoder and tokenizer at the top,
    1_Pooling, 2_Normalize), by sentence-transformers itself, so that `SentenceTransformer(folder)` loads it.

    A structurally pruned encoder (config.distilkit_pruning) is saved with distilkit's loader file beside it and
    `auto_map` naming it for AutoModel; sentence-transformers runs that file (written here a moment before) to
    rebuild the shapes, as its users will with `trust_remote_code=True`."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    from distilkit.models.pruned import MODELING_FILE, modeling_source, remote_code_names, unpruned_class

    folder = Path(folder)
    pruned = bool(getattr(model.config, "distilkit_pruning", None))
    names = remote_code_names("AutoModel", unpruned_class(model.encoder).__name__) if pruned else {}
    for key, value in names.items():
        setattr(model.config, key, value)
    model.encoder.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    if pruned:
        (folder / MODELING_FILE).write_text(modeling_source(names["architectures"][0]))
    trust = {"trust_remote_code": True} if pruned else {}
    length = model.max_seq_length or None
    modules: list[nn.Module] = [
        Transformer(str(folder), max_seq_length=length, model_kwargs=trust, config_kwargs=trust),
        Pooling(model.width, pooling_mode=model.pooling),
    ]
    if model.normalize:
        modules.append(Normalize())
    SentenceTransformer(modules=modules, device="cpu").save(str(folder), create_model_card=False)
    if pruned:  # it saved the encoder it loaded through auto_map under that class's own name: point back at ours
        path = folder / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **names}, indent=2, sort_keys=True) + "\n")
