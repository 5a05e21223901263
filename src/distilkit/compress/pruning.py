"""Pruning operations: importance scores, choosing what to remove, and removing it for real.

Head importance follows Michel, Levy & Neubig (2019), "Are Sixteen Heads Really Better than One?": put a gate
ξ_h = 1 on every head's output and score I_h = Σ_batches |∂L/∂ξ_h| on labelled examples; scores are then
normalised per layer (L2), as in their paper and HF's bertology script, so layers compare in a global ranking.
FFN neurons get the same treatment with a gate on each intermediate unit after the activation (the first-order
Taylor estimate of the loss change when the unit is removed).

Removal is structural: Q/K/V lose the rows of removed heads, the attention output projection the matching
columns; the FFN's first Linear loses rows, the second columns. So the matrices shrink and time falls.
Unstructured magnitude pruning zeroes single weights (torch.nn.utils.prune, then made permanent).
"""

from __future__ import annotations

import torch
from torch.nn.utils import prune as torch_prune
from transformers.pytorch_utils import prune_linear_layer

from distilkit.errors import DistilkitError
from distilkit.models.families import family
from distilkit.models.pruned import (
    LAYER_PATHS,
    encoder_layer_list,
    get_module,
    head_projections,
    layer_paths,
    set_heads,
    set_module,
)


def paths_for(model, heads: bool = False) -> dict:
    """The model's pruning layout (models/pruned.py); a one-line refusal where pruning does not apply."""
    model_type, facts = model.config.model_type, family(model)
    reason = facts.no_pruning or (facts.no_head_pruning if heads else None)
    if reason:
        raise DistilkitError(reason)
    paths = layer_paths(model_type)
    if paths is None:
        raise DistilkitError(
            f"{model_type}: structured pruning knows the layer layouts of bert-like encoders (bert, roberta, "
            f"xlm-roberta, electra, ...) and {', '.join(k for k in LAYER_PATHS if k != 'bert')}; "
            "distil this model into one of those, or use --sparsity"
        )
    return paths


def head_size(model) -> int:
    config = model.config
    hidden = getattr(config, "hidden_size", None) or config.dim
    heads = getattr(config, "num_attention_heads", None) or config.n_heads
    return hidden // heads


def shape_summary(model) -> dict:
    """Heads and FFN width of every layer as they are now."""
    paths, d = paths_for(model), head_size(model)
    layers = encoder_layer_list(model, paths)
    return {
        "attention_heads": [_width(layer, paths) // d for layer in layers],
        "head_size": d,
        "intermediate_sizes": [
            get_module(layer, paths["ffn_in"]).out_features // paths.get("ffn_chunks", 1) for layer in layers
        ],
    }


def _width(layer, paths: dict) -> int:
    """heads · head_size of one layer, read from its (first) query projection."""
    path, chunks = head_projections(layer, paths)[0]
    return get_module(layer, path).out_features // chunks


def linear_macs_per_token(model, seq_len: int = 128) -> int:
    """Multiply-adds per token in the encoder's Linear layers plus attention (QKᵀ and AV) at `seq_len`."""
    shapes, paths = shape_summary(model), paths_for(model)
    hidden = get_module(encoder_layer_list(model, paths)[0], paths["out"]).out_features
    ffn_matrices = 1 + paths.get("ffn_chunks", 1)  # a gated FFN has two input matrices
    total = 0
    for heads, ffn in zip(shapes["attention_heads"], shapes["intermediate_sizes"]):
        width = heads * shapes["head_size"]
        total += 4 * hidden * width + ffn_matrices * hidden * ffn + 2 * seq_len * width
    return total


def task_loss(model, batch: dict) -> torch.Tensor:
    return model(**batch).loss


def score_importance(model, batches, heads: bool, neurons: bool, loss_of=task_loss) -> tuple[list, list]:
    """Per-layer importance of heads and FFN neurons: Σ |∂loss/∂gate| over `batches`, L2-normalised per layer.
    `loss_of(model, batch)`: the task's loss on a labelled batch (Michel et al., 2019, "Are Sixteen Heads Really
    Better than One?"), or for an embedding model a projection of its vectors (compress/embedding_prune.py)."""
    paths, d = paths_for(model), head_size(model)
    shapes = shape_summary(model)
    layers = encoder_layer_list(model, paths)
    head_gates = [torch.ones(h, requires_grad=True) for h in shapes["attention_heads"]]
    ffn_gates = [torch.ones(f, requires_grad=True) for f in shapes["intermediate_sizes"]]
    hooks = []
    for layer, hg, fg in zip(layers, head_gates, ffn_gates):

        def gate_heads(module, args, gate=hg):
            (x,) = args  # concatenated head outputs [batch, seq, heads*d] entering the output projection
            return ((x.view(*x.shape[:-1], -1, d) * gate.to(x.dtype)[:, None]).view_as(x),)

        def gate_neurons(module, args, gate=fg):
            return (args[0] * gate.to(args[0].dtype),)

        hooks.append(get_module(layer, paths["out"]).register_forward_pre_hook(gate_heads))
        hooks.append(get_module(layer, paths["ffn_out"]).register_forward_pre_hook(gate_neurons))
    was_training = model.training
    model.eval()  # no dropout: the scores should not depend on the noise
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)  # only the gates need gradients
    head_scores = [torch.zeros(len(g)) for g in head_gates]
    ffn_scores = [torch.zeros(len(g)) for g in ffn_gates]
    try:
        for batch in batches:
            loss_of(model, batch).backward()
            for scores, gates in ((head_scores, head_gates), (ffn_scores, ffn_gates)):
                for s, g in zip(scores, gates):
                    s += g.grad.abs()
                    g.grad = None
    finally:
        for h in hooks:
            h.remove()
        for p, r in zip(model.parameters(), requires):
            p.requires_grad_(r)
        model.train(was_training)
    normalise = lambda scores: [s / (s.norm() + 1e-12) for s in scores]  # noqa: E731
    return (normalise(head_scores) if heads else []), (normalise(ffn_scores) if neurons else [])


def parse_head_spec(spec: str, heads_per_layer: list[int]) -> tuple[float | None, dict[int, int] | None]:
    """'0.3' → a fraction of all heads; '0:2,3:4' → counts per layer. Impossible requests fail here."""
    spec = str(spec).strip()
    if ":" not in spec:
        try:
            fraction = float(spec)
        except ValueError:
            raise DistilkitError(
                f"--heads {spec!r}: give a fraction like 0.3 or per-layer counts like 0:2,3:4"
            ) from None
        if not 0 <= fraction < 1:
            raise DistilkitError(f"--heads {spec}: the fraction must be in [0, 1); 1 would remove every head")
        return fraction, None
    counts = {}
    for part in spec.split(","):
        layer_s, _, count_s = part.partition(":")
        try:
            layer, count = int(layer_s), int(count_s)
        except ValueError:
            raise DistilkitError(f"--heads {spec!r}: {part!r} is not LAYER:COUNT (e.g. 0:2)") from None
        if not 0 <= layer < len(heads_per_layer):
            raise DistilkitError(
                f"--heads {spec!r}: layer {layer} does not exist (layers 0-{len(heads_per_layer) - 1})"
            )
        have = heads_per_layer[layer]
        if count > have:
            raise DistilkitError(f"--heads {spec!r}: layer {layer} has only {have} heads, cannot remove {count}")
        if count == have:
            raise DistilkitError(
                f"--heads {spec!r}: removing all {have} heads of layer {layer} would leave it with "
                f"none; remove at most {have - 1}"
            )
        counts[layer] = count
    return None, counts


def choose_lowest(scores: list[torch.Tensor], fraction: float, budget: str, what: str) -> list[list[int]]:
    """Indices to remove per layer: the lowest-scored `fraction` globally or per layer; every layer keeps ≥ 1."""
    sizes = [len(s) for s in scores]
    if budget == "layer":
        chosen = []
        for i, s in enumerate(scores):
            n = round(fraction * len(s))
            if n >= len(s):
                raise DistilkitError(f"removing {fraction} of layer {i}'s {len(s)} {what} would remove all of them")
            chosen.append(sorted(torch.argsort(s)[:n].tolist()))
        return chosen
    total = round(fraction * sum(sizes))
    flat = sorted((float(v), layer, idx) for layer, s in enumerate(scores) for idx, v in enumerate(s))
    chosen, left = [[] for _ in scores], list(sizes)
    for _, layer, idx in flat:
        if total == 0:
            break
        if left[layer] > 1:  # a layer with no heads (or neurons) left would be a different model
            chosen[layer].append(idx)
            left[layer] -= 1
            total -= 1
    return [sorted(c) for c in chosen]


def _keep_index(size: int, remove: list[int], block: int = 1) -> torch.Tensor:
    gone = set(remove)
    return torch.tensor([u * block + j for u in range(size // block) if u not in gone for j in range(block)])


def _chunked(keep: torch.Tensor, size: int, chunks: int) -> torch.Tensor:
    """The same kept rows in each of `chunks` stacked blocks of `size` rows (fused QKV, gated FFN input)."""
    return torch.cat([keep + c * size for c in range(chunks)])


def _shrink(layer, path: str, keep: torch.Tensor, dim: int) -> None:
    set_module(layer, path, prune_linear_layer(get_module(layer, path), keep, dim=dim))


@torch.no_grad()
def remove_heads(model, remove: list[list[int]]) -> None:
    paths, d = paths_for(model, heads=True), head_size(model)
    for layer, heads in zip(encoder_layer_list(model, paths), remove):
        if not heads:
            continue
        width = _width(layer, paths)
        keep = _keep_index(width, heads, d)
        for path, chunks in head_projections(layer, paths):
            _shrink(layer, path, _chunked(keep, width, chunks), dim=0)
        _shrink(layer, paths["out"], keep, dim=1)
        set_heads(get_module(layer, paths["attention"]), paths["heads_attr"], len(keep) // d, d)


@torch.no_grad()
def remove_neurons(model, remove: list[list[int]]) -> None:
    paths = paths_for(model)
    chunks = paths.get("ffn_chunks", 1)
    for layer, units in zip(encoder_layer_list(model, paths), remove):
        if not units:
            continue
        size = get_module(layer, paths["ffn_in"]).out_features // chunks
        keep = _keep_index(size, units)
        _shrink(layer, paths["ffn_in"], _chunked(keep, size, chunks), dim=0)
        _shrink(layer, paths["ffn_out"], keep, dim=1)


def encoder_linears(model) -> list[tuple[str, torch.nn.Linear]]:
    paths = paths_for(model)
    found = []
    for i, layer in enumerate(encoder_layer_list(model, paths)):
        keys = [path for path, _ in head_projections(layer, paths)] + [paths[k] for k in ("out", "ffn_in", "ffn_out")]
        found += [(f"layer{i}.{key}", get_module(layer, key)) for key in keys]
    return found


@torch.no_grad()
def sparsify(model, sparsity: float, budget: str) -> dict[str, torch.Tensor]:
    """Zero the smallest-magnitude encoder Linear weights, permanently. Returns the masks (1 = kept)."""
    linears = encoder_linears(model)
    if budget == "global":
        torch_prune.global_unstructured(
            [(m, "weight") for _, m in linears], torch_prune.L1Unstructured, amount=sparsity
        )
    else:
        for _, m in linears:
            torch_prune.l1_unstructured(m, "weight", amount=sparsity)
    masks = {}
    for name, m in linears:
        masks[name] = m.weight_mask.clone()
        torch_prune.remove(m, "weight")  # bake the zeros into .weight; no mask or hook is left behind
    return masks


@torch.no_grad()
def reapply_masks(model, masks: dict[str, torch.Tensor]) -> None:
    """Zero again the weights that recovery training moved away from zero."""
    for name, m in encoder_linears(model):
        m.weight.mul_(masks[name].to(m.weight.dtype))


def sparsity_report(model) -> dict:
    linears = encoder_linears(model)
    zeros = sum(int((m.weight == 0).sum()) for _, m in linears)
    total = sum(m.weight.numel() for _, m in linears)
    all_params = sum(p.numel() for p in model.parameters())
    return {
        "encoder_linear_sparsity": zeros / total,
        "zero_weights": zeros,
        "share_of_all_parameters": zeros / all_params,
    }
