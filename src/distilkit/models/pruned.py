"""Loading structurally pruned encoders: per-layer head counts and FFN widths recorded in config.json.

transformers 5 removed `prune_heads` and `config.pruned_heads`, and a BERT config can only describe layers that
all have the same number of heads and the same FFN width. A pruned model saved by `distilkit prune` therefore
records its real shapes in `config.distilkit_pruning`:

    {"attention_heads": [12, 9, 8, ...], "head_size": 32, "intermediate_sizes": [1536, 1100, ...]}

and `shrink_to_config(model)` resizes the freshly built (full-size, still empty) Linear layers to those shapes
before the weights are loaded. distilkit's own loader uses it directly. The file is also copied into the
pruned model folder as `modeling_distilkit_pruned.py`, with `auto_map` in config.json, so plain transformers
loads the folder with `AutoModelFor...from_pretrained(folder, trust_remote_code=True)`.

This module imports only torch and transformers, so the copy works without distilkit installed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

MODELING_FILE = "modeling_distilkit_pruned.py"  # this file's name in a pruned model folder

# Where each architecture keeps the Linear layers that pruning resizes, relative to one encoder layer.
# "q", "k", "v" (or one fused "qkv" holding the three in that order) lose the rows of removed heads, and so do
# the optional "qk_extra" (DeBERTa's separate relative-position projections, when it has them); "out" is the
# attention output projection (its input side shrinks); "ffn_in" / "ffn_out" likewise for the FFN, whose input
# Linear holds `ffn_chunks` stacked halves in a gated MLP (ModernBERT: input and gate). `heads_attr` is the
# attention module's head count, kept true after pruning (None where the forward infers it from the shapes).
LAYER_PATHS = {
    "bert": dict(
        layers="encoder.layer",
        attention="attention.self",
        q="attention.self.query",
        k="attention.self.key",
        v="attention.self.value",
        out="attention.output.dense",
        ffn_in="intermediate.dense",
        ffn_out="output.dense",
        heads_attr="num_attention_heads",
    ),
    "distilbert": dict(
        layers="transformer.layer",
        attention="attention",
        q="attention.q_lin",
        k="attention.k_lin",
        v="attention.v_lin",
        out="attention.out_lin",
        ffn_in="ffn.lin1",
        ffn_out="ffn.lin2",
        heads_attr="n_heads",
    ),
    "deberta-v2": dict(
        layers="encoder.layer",
        attention="attention.self",
        q="attention.self.query_proj",
        k="attention.self.key_proj",
        v="attention.self.value_proj",
        qk_extra=("attention.self.pos_key_proj", "attention.self.pos_query_proj"),
        out="attention.output.dense",
        ffn_in="intermediate.dense",
        ffn_out="output.dense",
        heads_attr="num_attention_heads",
    ),
    "mpnet": dict(  # heads are not pruned (models/families.py says why); FFN neurons are
        layers="encoder.layer",
        attention="attention.attn",
        q="attention.attn.q",
        k="attention.attn.k",
        v="attention.attn.v",
        out="attention.attn.o",
        ffn_in="intermediate.dense",
        ffn_out="output.dense",
        heads_attr="num_attention_heads",
    ),
    "modernbert": dict(
        layers="layers",
        attention="attn",
        qkv="attn.Wqkv",
        out="attn.Wo",
        ffn_in="mlp.Wi",
        ffn_chunks=2,
        ffn_out="mlp.Wo",
        heads_attr=None,
    ),
}
# Model types whose encoder layers are laid out like BERT's.
BERT_LIKE = ("bert", "roberta", "xlm-roberta", "electra", "camembert", "data2vec-text", "xmod", "ernie")


def layer_paths(model_type: str) -> dict | None:
    if model_type in BERT_LIKE:
        return LAYER_PATHS["bert"]
    return LAYER_PATHS.get(model_type)


def head_projections(layer: nn.Module, paths: dict) -> list[tuple[str, int]]:
    """(path, chunks) of the Linear layers whose output rows are per head: q, k, v (or fused qkv) and extras."""
    if "qkv" in paths:
        return [(paths["qkv"], 3)]
    extra = [(p, 1) for p in paths.get("qk_extra", ()) if has_module(layer, p)]
    return [(paths["q"], 1), (paths["k"], 1), (paths["v"], 1), *extra]


def has_module(root: nn.Module, dotted: str) -> bool:
    try:
        get_module(root, dotted)
        return True
    except AttributeError:
        return False


def get_module(root: nn.Module, dotted: str) -> nn.Module:
    for part in dotted.split("."):
        root = getattr(root, part)
    return root


def set_module(root: nn.Module, dotted: str, module: nn.Module) -> None:
    parent, _, name = dotted.rpartition(".")
    setattr(get_module(root, parent) if parent else root, name, module)


def encoder_layer_list(model: nn.Module, paths: dict) -> nn.ModuleList:
    return get_module(model.base_model, paths["layers"])


def shrink_to_config(model: nn.Module) -> None:
    """Resize the attention and FFN Linear layers of a freshly built model to `config.distilkit_pruning`."""
    spec = getattr(model.config, "distilkit_pruning", None)
    if not spec:
        return
    paths = layer_paths(model.config.model_type)
    if paths is None:
        raise ValueError(f"distilkit_pruning: model type {model.config.model_type!r} is not supported")
    head_size, ffn_chunks = spec["head_size"], paths.get("ffn_chunks", 1)
    for layer, heads, ffn in zip(encoder_layer_list(model, paths), spec["attention_heads"], spec["intermediate_sizes"]):
        width = heads * head_size
        for path, chunks in head_projections(layer, paths):
            _resize(layer, path, out_features=chunks * width)
        _resize(layer, paths["out"], in_features=width)
        set_heads(get_module(layer, paths["attention"]), paths["heads_attr"], heads, head_size)
        _resize(layer, paths["ffn_in"], out_features=ffn_chunks * ffn)
        _resize(layer, paths["ffn_out"], in_features=ffn)


def _resize(layer: nn.Module, path: str, in_features: int | None = None, out_features: int | None = None) -> None:
    old = get_module(layer, path)
    new = nn.Linear(in_features or old.in_features, out_features or old.out_features, bias=old.bias is not None)
    set_module(layer, path, new)


def set_heads(attention: nn.Module, heads_attr: str | None, heads: int, head_size: int) -> None:
    """Keep the attention module's bookkeeping true (its forward infers the head count from the shapes)."""
    if heads_attr:
        setattr(attention, heads_attr, heads)
    if hasattr(attention, "all_head_size"):
        attention.all_head_size = heads * head_size


def pruned_class(base: type) -> type:
    """A subclass of `base` (e.g. BertForSequenceClassification) that shrinks itself after construction."""

    def __init__(self, config, *args, **kwargs):
        base.__init__(self, config, *args, **kwargs)
        shrink_to_config(self)

    return type(f"Pruned{base.__name__}", (base,), {"__init__": __init__})


def modeling_source(base: str) -> str:
    """The loader file of a pruned folder (MODELING_FILE): this module with `DistilkitPrunedModel` bound to
    transformers' class `base`, which `auto_map` in config.json names."""
    stanza = f"\n\nfrom transformers import {base} as _Base  # noqa: E402\n\n"
    return Path(__file__).read_text() + stanza + "DistilkitPrunedModel = pruned_class(_Base)\n"


def unpruned_class(model: nn.Module) -> type:
    """transformers' own class of a model (the base of pruned_class's subclass, when it is one)."""
    return type(model).__mro__[1] if type(model).__name__.startswith("Pruned") else type(model)


def remote_code_names(auto_class: str, base: str) -> dict:
    """The config.json entries that point transformers' Auto class at the loader file."""
    return {"auto_map": {auto_class: f"{MODELING_FILE[:-3]}.DistilkitPrunedModel"}, "architectures": [base]}


@torch.no_grad()
def _self_check() -> None:  # pragma: no cover - run by hand: python pruned_modeling.py
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    config.distilkit_pruning = {"attention_heads": [3, 1], "head_size": 8, "intermediate_sizes": [40, 10]}
    model = pruned_class(BertForSequenceClassification)(config)
    print(model.bert.encoder.layer[1].attention.self.query)


if __name__ == "__main__":  # pragma: no cover
    _self_check()
