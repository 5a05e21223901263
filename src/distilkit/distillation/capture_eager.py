"""Capture for encoders whose attention does not go through transformers' attention interface.

DeBERTa-v2/v3 (disentangled attention: content scores plus content-to-position and position-to-content terms)
and MPNet (a relative-position bias added to the scores) compute attention in their own module. For them,
`enable()` swaps each attention module's class for a subclass whose forward is the original's, step for
step, and records into the active `capture.Recorder` what the softmax sees before masking (the same contract
as the attention-interface path: [batch, heads, query, key], pre-softmax, unmasked) and Q/K/V as
[batch, len, heads·head_dim]. Without an active recorder the original forward runs unchanged.

tests/test_families.py checks, per family, that outputs with the swapped class equal the original's and that
one score map is recorded per layer. Adding a family: one subclass here and one entry in `CAPTURING`.
"""

from __future__ import annotations

import math

import torch
from transformers.models.deberta_v2 import modeling_deberta_v2 as deberta
from transformers.models.mpnet import modeling_mpnet as mpnet

from distilkit.distillation import capture


class CapturingDebertaV2Attention(deberta.DisentangledSelfAttention):
    """DisentangledSelfAttention.forward (transformers 5.24) with recording; P = rel_embeddings."""

    def forward(
        self,
        hidden_states,
        attention_mask,
        output_attentions=False,
        query_states=None,
        relative_pos=None,
        rel_embeddings=None,
    ):
        recorder = capture.active()
        if recorder is None:
            return super().forward(
                hidden_states, attention_mask, output_attentions, query_states, relative_pos, rel_embeddings
            )
        q = self.query_proj(hidden_states if query_states is None else query_states)
        k, v = self.key_proj(hidden_states), self.value_proj(hidden_states)
        heads = self.num_attention_heads
        query_layer, key_layer = self.transpose_for_scores(q, heads), self.transpose_for_scores(k, heads)
        value_layer = self.transpose_for_scores(v, heads)
        scale_factor = 1 + ("c2p" in self.pos_att_type) + ("p2c" in self.pos_att_type)
        scale = deberta.scaled_size_sqrt(query_layer, scale_factor)
        scores = torch.bmm(query_layer, key_layer.transpose(-1, -2) / scale.to(dtype=query_layer.dtype))
        if self.relative_attention:
            rel = self.pos_dropout(rel_embeddings)
            scores = scores + self.disentangled_attention_bias(query_layer, key_layer, relative_pos, rel, scale_factor)
        scores = scores.view(-1, heads, scores.size(-2), scores.size(-1))
        recorder.add(scores, q, k, v)
        masked = scores.masked_fill(~attention_mask.bool(), torch.finfo(query_layer.dtype).min)
        probs = self.dropout(torch.nn.functional.softmax(masked, dim=-1))
        context = torch.bmm(probs.view(-1, probs.size(-2), probs.size(-1)), value_layer)
        context = context.view(-1, heads, context.size(-2), context.size(-1)).permute(0, 2, 1, 3).contiguous()
        context = context.view(context.size()[:-2] + (-1,))
        return (context, probs if output_attentions else None)


class CapturingMPNetAttention(mpnet.MPNetSelfAttention):
    """MPNetSelfAttention.forward (transformers 5.24) with recording; the position bias is part of the scores."""

    def forward(self, hidden_states, attention_mask=None, position_bias=None, output_attentions=False, **kwargs):
        recorder = capture.active()
        if recorder is None:
            return super().forward(hidden_states, attention_mask, position_bias, output_attentions, **kwargs)
        shape = (*hidden_states.shape[:-1], -1, self.attention_head_size)
        q, k, v = self.q(hidden_states), self.k(hidden_states), self.v(hidden_states)
        qh, kh, vh = (x.view(shape).transpose(1, 2) for x in (q, k, v))
        scores = torch.matmul(qh, kh.transpose(-1, -2)) / math.sqrt(self.attention_head_size)
        if position_bias is not None:
            scores = scores + position_bias
        recorder.add(scores, q, k, v)
        if attention_mask is not None:
            scores = scores + attention_mask
        probs = self.dropout(torch.nn.functional.softmax(scores, dim=-1))
        context = torch.matmul(probs, vh).permute(0, 2, 1, 3).contiguous()
        out = self.o(context.view(*context.shape[:-2], -1))
        return (out, probs) if output_attentions else (out,)


CAPTURING = {
    deberta.DisentangledSelfAttention: CapturingDebertaV2Attention,
    mpnet.MPNetSelfAttention: CapturingMPNetAttention,
}


def enable(model) -> None:
    """Swap the attention modules that need it to their capturing class."""
    for module in model.modules():
        cls = CAPTURING.get(type(module))
        if cls is not None:
            module.__class__ = cls
