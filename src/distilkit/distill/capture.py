"""Capture pre-softmax attention scores and Q/K/V from any model that uses transformers' attention interface.

In transformers 5 every attention layer calls a function from `ALL_ATTENTION_FUNCTIONS` with
`(module, query, key, value, attention_mask, scaling=..., dropout=...)`. We register our own function under
the name `distilkit_capture`: it records what the active `Recorder` asks for, then computes the attention
output with SDPA as usual. No per-architecture hooks are needed.

A custom attention name also needs a mask function registered under the same name: without it the
attention mask arrives as None and padding is silently attended (DESIGN.md §4; tested in
tests/test_capture.py).
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

NAME = "distilkit_capture"
_active: contextvars.ContextVar = contextvars.ContextVar("distilkit_recorder", default=None)
_registered = False


@dataclass
class Recorder:
    """What one forward pass recorded, one entry per attention layer in call order."""

    scores: bool = False
    qkv: bool = False
    attention_scores: list = field(default_factory=list)  # [batch, heads, query, key], pre-softmax, unmasked
    queries_keys_values: list = field(default_factory=list)  # (Q, K, V), each [batch, len, heads·head_dim]


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def capture_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    recorder = _active.get()
    if recorder is not None:
        scale = scaling if scaling is not None else query.size(-1) ** -0.5
        if recorder.scores:
            recorder.attention_scores.append(torch.matmul(query, key.transpose(-1, -2)) * scale)
        if recorder.qkv:
            recorder.queries_keys_values.append((_merge_heads(query), _merge_heads(key), _merge_heads(value)))
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)


def register() -> None:
    """Register the capture attention and its mask function with transformers (idempotent)."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, capture_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    _registered = True


def enable(model) -> None:
    """Switch a model to the capture attention (outputs are unchanged: it still runs SDPA)."""
    register()
    model.set_attn_implementation(NAME)


@contextmanager
def recording(scores: bool = False, qkv: bool = False):
    """`with recording(scores=True) as rec: model(**batch)` fills rec.attention_scores layer by layer."""
    recorder = Recorder(scores=scores, qkv=qkv)
    token = _active.set(recorder)
    try:
        yield recorder
    finally:
        _active.reset(token)
