"""Export-time rewrites of a model's code: the same numbers, a faster graph.

Some model code computes, in every forward, values that depend only on the sequence length. Traced as is, the
ONNX graph recomputes them on each run, in many small nodes. A patch here swaps such a method, on the model
instance and only while torch.onnx traces it, for one that reads a table computed once by the model's own code.
Export's parity check then compares the ONNX graph with the unpatched PyTorch model, so a wrong patch fails the
export instead of shipping. Adding one is one `@patch("model_type")` function (the pattern of Optimum's export
model patchers).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import torch

PATCHES: dict[str, Callable] = {}


def patch(model_type: str):
    """Register a context manager `fn(model)` that patches `model` for the duration of the export trace."""

    def register(fn):
        PATCHES[model_type] = contextlib.contextmanager(fn)
        return fn

    return register


@contextlib.contextmanager
def patched_for_export(model) -> Iterator[list[str]]:
    """Apply the model type's patch, if any; yields the names of the patches applied (for the export record)."""
    fn = PATCHES.get(getattr(model.config, "model_type", ""))
    if fn is None:
        yield []
        return
    with fn(model) as applied:
        yield applied


@patch("mpnet")
def mpnet_position_bias_table(model) -> Iterator[list[str]]:
    """MPNet's relative position bias, b[h, i, j] = W[bucket(j − i), h] (Song et al. 2020, after T5), depends on
    the distance j − i alone, yet its code recomputes bucket(j − i) each forward: a log, divisions, casts and
    wheres, ~20 small nodes per run in ONNX Runtime. The patch evaluates MPNet's own compute_position_bias once
    at its longest length L, keeps the row of every distance −(L−1)..L−1 as a table T[j − i + L − 1, h], and
    returns T gathered by the distance matrix, shape (1, heads, n, n); the layers add it to their scores by
    broadcasting, as they add the original (batch, heads, n, n) one. Its padding mask is built
    in one broadcastable step (padding_bias)."""
    encoders = [m for m in model.modules() if hasattr(m, "compute_position_bias")]
    modeling = sys.modules[type(model).__module__]
    if len(encoders) != 1 or not hasattr(modeling, "create_bidirectional_mask"):
        yield []  # a layout this patch was not written for: export the model's own code
        return
    encoder = encoders[0]
    longest = model.config.max_position_embeddings
    weight = encoder.relative_attention_bias.weight
    with torch.no_grad():
        full = encoder.compute_position_bias(weight.new_zeros(1, longest, 1))[0]  # (heads, L, L): b[h, i, j]
    # rows: distances −(L−1)..0, then 1..L−1; one row of all heads per distance, so a lookup copies whole rows
    table = torch.cat([full[:, longest - 1, :], full[:, 0, 1:]], dim=1).T.contiguous()

    def compute_position_bias(x, position_ids=None, num_buckets=32):
        n = x.size(1)
        positions = torch.arange(n, device=x.device)
        distances = (positions[None, :] - positions[:, None] + (longest - 1)).reshape(-1)
        # one Gather of rows (ONNX Runtime's Gather on axis 1, or GatherND, copy element by element: 3-10x slower)
        return table.index_select(0, distances).T.reshape(1, -1, n, n)

    original_mask = modeling.create_bidirectional_mask

    def padding_bias(config, inputs_embeds, attention_mask, **kwargs):
        """create_bidirectional_mask for this eager encoder: additive, 0 for tokens and the dtype's minimum for
        padding, as (batch, 1, 1, n) where transformers expands indices (~25 small nodes: Range, GatherND, And,
        Where...) to build (batch, 1, n, n). The scores add either by broadcasting."""
        if attention_mask is None or attention_mask.dim() != 2:
            return original_mask(config, inputs_embeds, attention_mask, **kwargs)
        dtype = inputs_embeds.dtype
        return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min

    encoder.compute_position_bias = compute_position_bias  # an instance attribute shadows the class's method
    modeling.create_bidirectional_mask = padding_bias
    try:
        yield ["mpnet-position-bias-table", "padding-bias"]
    finally:
        del encoder.compute_position_bias
        modeling.create_bidirectional_mask = original_mask
