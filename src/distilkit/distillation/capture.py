"""Capture pre-softmax attention scores and Q/K/V from any model that uses transformers' attention interface.

In transformers 5 every attention layer calls a function from `ALL_ATTENTION_FUNCTIONS` with
`(module, query, key, value, attention_mask, scaling=..., dropout=...)`. We register our own function under
the name `distilkit_capture`: it records what the active `Recorder` asks for, then computes the attention
output. No per-architecture hooks are needed. When the scores are recorded anyway, the output is computed from
them (softmax(scores + mask) · V) instead of by SDPA, which would compute Q Kᵀ a second time: with bf16 autocast
on CPU that made one attention layer's forward and backward 1.5x faster (45 vs 70 ms at batch 32, length 128).
Layers with anything SDPA handles beyond a padding mask (position bias, soft-capping, grouped K/V, causal
masking) keep SDPA.

A custom attention name also needs a mask function registered under the same name: without it the
attention mask arrives as None and padding is silently attended (tested in tests/test_distill_parts.py: a
padded sentence gives the logits it gives alone).
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

    def add(self, scores, q, k, v) -> None:
        """Record one layer's scores and Q/K/V (already [batch, len, heads·head_dim]), as far as asked for."""
        if self.scores:
            self.attention_scores.append(scores)
        if self.qkv:
            self.queries_keys_values.append((q, k, v))


def active() -> Recorder | None:
    """The recorder of the `recording()` block this forward runs in, if any."""
    return _active.get()


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def capture_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    recorder = _active.get()
    scores = None
    if recorder is not None:
        scale = scaling if scaling is not None else query.size(-1) ** -0.5
        if recorder.scores:
            scores = torch.matmul(query, key.transpose(-1, -2)) * scale
            recorder.attention_scores.append(scores)
        if recorder.qkv:
            recorder.queries_keys_values.append((_merge_heads(query), _merge_heads(key), _merge_heads(value)))
    if scores is not None and _plain_attention(module, attention_mask, kwargs):
        return _attention_from_scores(scores, value, attention_mask, dropout), None
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)


def _plain_attention(module, attention_mask, kwargs) -> bool:
    """True for an encoder's plain attention: a padding mask at most, nothing else SDPA would have to handle."""
    extras = any(kwargs.get(name) is not None for name in ("position_bias", "softcap", "sliding_window"))
    grouped = getattr(module, "num_key_value_groups", 1) > 1
    causal = attention_mask is None and getattr(module, "is_causal", False)
    return not (extras or grouped or causal)


def _attention_from_scores(scores, value, attention_mask, dropout: float) -> torch.Tensor:
    """softmax(scores + mask) · V with dropout on the probabilities, as [batch, query, heads, head_dim] like SDPA's
    output. The mask is boolean (True = attend, from sdpa_mask) or additive; the softmax runs in float32."""
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    if dropout > 0:
        probs = torch.nn.functional.dropout(probs, p=dropout)
    return torch.matmul(probs, value).transpose(1, 2).contiguous()


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
    """Switch a model to the capture attention (outputs are unchanged: it still runs SDPA). Families whose
    attention bypasses the attention interface (DeBERTa-v2/v3, MPNet) get capturing modules instead."""
    from distilkit.distillation import capture_eager

    register()
    model.set_attn_implementation(NAME)
    capture_eager.enable(model)
    check_recorded(model)


@torch.no_grad()
def check_recorded(model) -> None:
    """One short forward: every layer must record one score map, or the losses would pair the wrong layers."""
    from distilkit.errors import DistilkitError
    from distilkit.models.families import layer_count

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with recording(scores=True) as rec:
            model(input_ids=torch.ones(1, 4, dtype=torch.long, device=device))
    finally:
        model.train(was_training)
    if len(rec.attention_scores) != layer_count(model):
        raise DistilkitError(
            f"{model.config.model_type}: distilkit recorded {len(rec.attention_scores)} attention maps for "
            f"{layer_count(model)} layers (its attention bypasses transformers' attention interface); use "
            "--method kd or distilbert, which need no attention maps"
        )


@contextmanager
def recording(scores: bool = False, qkv: bool = False):
    """`with recording(scores=True) as rec: model(**batch)` fills rec.attention_scores layer by layer."""
    recorder = Recorder(scores=scores, qkv=qkv)
    token = _active.set(recorder)
    try:
        yield recorder
    finally:
        _active.reset(token)
