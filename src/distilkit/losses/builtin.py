"""Distillation losses: one small formula each, registered with what it reads (see losses/registry.py).

Every formula takes student and teacher tensors plus an optional mask of valid positions and returns a scalar;
its registered `term` reads those tensors from a `LossInputs` batch. Masks are 1 for positions that count (real
tokens; labelled word-pieces for token-level KD) and 0 for padding. Conventions, chosen once and tested against
hand computations (tests/test_losses.py):
- KL divergences are KL(teacher ‖ student), averaged over examples (or valid tokens), not over classes;
- the logit KD term is multiplied by T² (Hinton et al.), so its gradients keep their scale as T changes —
  HF's DistilBERT and torchdistill do the same; TextBrewer does not, TinyBERT averages over classes.
- layer losses over several layer pairs are summed over the pairs (TinyBERT's Σ over mapped layers);
- the MSE layer losses (embedding, hidden, attention) are relative by default (`normalize=True`): the MSE divided
  by the teacher tensor's mean square over the same positions, ‖s − t‖² / ‖t‖². 0 is a perfect match and 1 is
  as far off as predicting zeros, whatever the layer's or the score's natural scale, so a weight of 1 means the
  same for every loss and none drowns the others. Raw MSE on pre-softmax attention scores is 10-100x the KD
  term (the issue behind this choice measured ≈ 22 against < 1), which only TinyBERT's separate stages hide.
  `--normalize-losses false` gives the papers' raw MSE.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from distilkit.losses.registry import LOSSES, LossInputs, register_loss


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of `values` over the positions where `mask` is 1 (mask broadcasts over trailing dims)."""
    if mask is None or bool(mask.all()):  # no padding (long texts cut at max length): a plain mean, no mask passes
        return values.mean()
    mask = mask.to(values.dtype)
    while mask.dim() < values.dim():
        mask = mask.unsqueeze(-1)
    mask = mask.expand_as(values)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


@register_loss("kd", reads={"logits"}, term=lambda b: _kd_term(b))
def kd_loss(student_logits, teacher_logits, temperature: float = 1.0, mask=None) -> torch.Tensor:
    """Soft-target knowledge distillation (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a NN").

        L_KD = T² · mean_i KL( softmax(z_t,i / T) ‖ softmax(z_s,i / T) )

    over examples i (or valid tokens i for token classification). Mixed with the label loss by the
    distiller as α·CE + (1−α)·L_KD.
    """
    t = temperature
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)
    return t * t * masked_mean(kl, mask)


@register_loss(
    "kd_soft_targets",
    reads={"logits"},
    term=lambda b: kd_soft_targets_loss(
        b.student_logits, soft_targets(b.teacher_logits, b.teacher_weights, b.temperature), b.temperature, b.token_mask
    ),
)
def kd_soft_targets_loss(student_logits, soft_targets, temperature: float = 1.0, mask=None) -> torch.Tensor:
    """KD against given target probabilities p (e.g. the weighted mean of several teachers' softmax(z/T)):

    L = T² · mean_i KL( p_i ‖ softmax(z_s,i / T) )
    """
    t = temperature
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    p = soft_targets.float()
    kl = (p * (torch.log(p.clamp_min(1e-12)) - log_p_student)).sum(-1)
    return t * t * masked_mean(kl, mask)


@register_loss(
    "kd_mse", reads={"logits"}, term=lambda b: kd_mse_loss(b.student_logits, _mean_teacher_logits(b), b.token_mask)
)
def kd_mse_loss(student_logits, teacher_logits, mask=None) -> torch.Tensor:
    """Logit matching for regression (and an option for classification; Ba & Caruana 2014):

    L = mean_i ‖z_s,i − z_t,i‖² / C   (C = number of outputs)
    """
    return masked_mean((student_logits.float() - teacher_logits.float()) ** 2, mask)


def relative_mse(student: torch.Tensor, teacher: torch.Tensor, mask, normalize: bool) -> torch.Tensor:
    """MSE(s, t) over the valid positions; with `normalize`, divided by mean(t²) over the same positions (the
    teacher's energy, detached: it is a scale, not a target)."""
    s, t = student.float(), teacher.float()
    mse = masked_mean((s - t) ** 2, mask)
    if not normalize:
        return mse
    return mse / masked_mean(t.detach() ** 2, mask).clamp_min(1e-8)


@register_loss(
    "hidden_mse", reads={"hidden"}, term=lambda b: _sum_pairs(hidden_mse_loss, b.hidden, b.mask, b.normalize)
)
def hidden_mse_loss(student_hidden, teacher_hidden, mask=None, projection=None, normalize=False) -> torch.Tensor:
    """TinyBERT's hidden-state loss (Jiao et al. 2020, "TinyBERT", eq. 8):

        L_hidn = MSE(H_s · W_h, H_t)            (normalize=True: MSE(H_s · W_h, H_t) / mean(H_t²))

    W_h is a learned linear map from the student width to the teacher width (identity when they match);
    the mean runs over valid tokens and hidden units.
    """
    if projection is not None:
        student_hidden = projection(student_hidden)
    return relative_mse(student_hidden, teacher_hidden, mask, normalize)


@register_loss(
    "embedding_mse",
    reads={"embeddings"},
    term=lambda b: _sum_pairs(embedding_mse_loss, b.embeddings, b.mask, b.normalize),
)
def embedding_mse_loss(student_embeddings, teacher_embeddings, mask=None, projection=None, normalize=False):
    """TinyBERT's embedding-layer loss (eq. 9): L_embd = MSE(E_s · W_e, E_t), on hidden state 0
    (normalize=True: divided by mean(E_t²))."""
    return hidden_mse_loss(student_embeddings, teacher_embeddings, mask, projection, normalize)


@register_loss(
    "attention_mse",
    reads={"scores"},
    term=lambda b: sum(attention_mse_loss(s, t, b.mask, b.attention_probabilities, b.normalize) for s, t in b.scores),
)
def attention_mse_loss(
    student_scores, teacher_scores, mask=None, probabilities: bool = False, normalize: bool = False
) -> torch.Tensor:
    """TinyBERT's attention loss (eq. 7) on pre-softmax scores A = Q Kᵀ / √d_k, per head:

        L_attn = 1/h · Σ_heads MSE(A_s, A_t)     (normalize=True: divided by mean(A_t²) over the same pairs)

    Scores are [batch, heads, query, key]. Pairs where the query or the key is padding are zeroed, as the
    official code does (it zeroes the −10000 masked entries). With `probabilities=True` the softmax over
    valid keys is compared instead, always raw (TextBrewer's attention_mse): probabilities are bounded and rows
    sum to 1, so there is no scale to normalise, and the term stays small next to KD (about 1/500 of it at the
    start on bbc-news), a light pull toward the teacher's attention. Head counts must match (else use
    `minilm_relations`).
    """
    if student_scores.shape[1] != teacher_scores.shape[1]:
        raise ValueError(
            f"attention_mse needs equal head counts (student {student_scores.shape[1]}, teacher "
            f"{teacher_scores.shape[1]}); use minilm_relations, which works with any head counts"
        )
    s, t = student_scores.float(), teacher_scores.float()
    pair_mask = None
    if mask is not None:
        m = mask.to(s.dtype)
        pair_mask = (m[:, None, :, None] * m[:, None, None, :]).expand_as(s)
    if probabilities:
        if pair_mask is not None:
            s = s.masked_fill(pair_mask == 0, -1e4)
            t = t.masked_fill(pair_mask == 0, -1e4)
        s, t = s.softmax(-1), t.softmax(-1)
    return relative_mse(s, t, pair_mask, normalize and not probabilities)


@register_loss("hidden_cosine", reads={"hidden"}, term=lambda b: _sum_pairs(hidden_cosine_loss, b.hidden, b.mask))
def hidden_cosine_loss(student_hidden, teacher_hidden, mask=None, projection=None) -> torch.Tensor:
    """DistilBERT's cosine embedding loss (Sanh et al. 2019): L_cos = mean_i (1 − cos(h_s,i, h_t,i)),
    over valid tokens i; aligns the directions of student and teacher hidden states.
    """
    if projection is not None:
        student_hidden = projection(student_hidden)
    cos = F.cosine_similarity(student_hidden.float(), teacher_hidden.float(), dim=-1)
    return masked_mean(1 - cos, mask)


def _relation_log_probs(x: torch.Tensor, heads: int, mask: torch.Tensor | None) -> torch.Tensor:
    """log softmax(X_r X_rᵀ / √d_r) for each of `heads` relation heads; x is [batch, len, width]."""
    b, n, width = x.shape
    if width % heads:
        raise ValueError(f"relation heads ({heads}) must divide the width {width}")
    d = width // heads
    xr = x.float().view(b, n, heads, d).transpose(1, 2)  # [b, heads, n, d]
    scores = xr @ xr.transpose(-1, -2) / math.sqrt(d)
    if mask is not None:
        scores = scores.masked_fill(mask[:, None, None, :] == 0, -1e4)
    return F.log_softmax(scores, dim=-1)


@register_loss(
    "minilm_relations", reads={"qkv"}, term=lambda b: minilm_relations_loss(*b.qkv, b.relation_heads, b.mask)
)
def minilm_relations_loss(student_qkv, teacher_qkv, relation_heads: int = 12, mask=None) -> torch.Tensor:
    """MiniLMv2 self-attention relation distillation (Wang et al. 2021, "MiniLMv2", eq. 3-4):

        L = Σ_{R ∈ {QQ, KK, VV}} 1/(A_r·|x|) Σ_a Σ_i KL( R_t,a,i ‖ R_s,a,i ),   R = softmax(X Xᵀ / √d_r)

    Q, K and V ([batch, len, width], heads concatenated) are re-split into `relation_heads` heads of
    their own, so teacher and student head counts and widths may differ. Averaged over relation heads
    and valid query positions.
    """
    total = 0.0
    for xs, xt in zip(student_qkv, teacher_qkv):
        log_s = _relation_log_probs(xs, relation_heads, mask)
        log_t = _relation_log_probs(xt, relation_heads, mask)
        kl = (log_t.exp() * (log_t - log_s)).sum(-1)  # [b, heads, n]
        query_mask = None if mask is None else mask[:, None, :].expand_as(kl)
        total = total + masked_mean(kl, query_mask)
    return total


@register_loss("ce", reads={"labels"})
def ce_term(batch: LossInputs) -> torch.Tensor:
    """The task's own label loss, computed by the student's head: cross-entropy (MSE for regression).
    Batches without labels (unlabeled transfer text) skip it."""
    return batch.student_loss


def soft_targets(teacher_logits: list, weights: list[float], temperature: float) -> torch.Tensor:
    """Multi-teacher soft targets: Σ_k w_k · softmax(z_k / T), weights normalised to sum to 1."""
    total = sum(weights)
    return sum((w / total) * torch.softmax(z.float() / temperature, dim=-1) for w, z in zip(weights, teacher_logits))


def _mean_teacher_logits(batch: LossInputs) -> torch.Tensor:
    total = sum(batch.teacher_weights)
    return sum((w / total) * z.float() for w, z in zip(batch.teacher_weights, batch.teacher_logits))


def _kd_term(batch: LossInputs) -> torch.Tensor:
    """`kd` as recipes use it: logit MSE for regression, soft targets of several teachers, else plain KD."""
    if batch.regression:
        return kd_mse_loss(batch.student_logits, _mean_teacher_logits(batch), batch.token_mask)
    if len(batch.teacher_logits) > 1:
        return LOSSES["kd_soft_targets"].term(batch)
    return kd_loss(batch.student_logits, batch.teacher_logits[0], batch.temperature, batch.token_mask)


def _sum_pairs(formula, pairs: list, mask, *options) -> torch.Tensor:
    """Σ over mapped layer pairs of formula(student, teacher, mask, projection, *options)."""
    return sum(formula(s, t, mask, projection, *options) for s, t, projection in pairs)


# ---- sentence embeddings (`--task embedding`): the pooled vectors travel in the logits' slot ----


@register_loss("sentence_mse", reads={"logits"}, term=lambda b: sentence_mse_loss(b.student_logits, _teacher_vector(b)))
def sentence_mse_loss(student_vectors, teacher_vectors) -> torch.Tensor:
    """Squared distance of sentence embeddings, averaged over the texts of the batch:

        L = 1/B · Σ_b ‖P·e_s,b − e_t,b‖²

    (e: the pooled, normalised embeddings; P: the learned projection when the widths differ, applied in the
    student's wrapper). The sentence-level loss of Reimers & Gurevych 2020 ("Making Monolingual Sentence
    Embeddings Multilingual using Knowledge Distillation") and of sentence-transformers' MSELoss, summed over the
    dimensions rather than averaged, so its scale does not shrink as the width grows (for unit vectors it is
    2 − 2·cos when P·e_s is unit too).
    """
    return (student_vectors.float() - teacher_vectors.float()).pow(2).sum(-1).mean()


@register_loss(
    "sentence_cosine", reads={"logits"}, term=lambda b: sentence_cosine_loss(b.student_logits, _teacher_vector(b))
)
def sentence_cosine_loss(student_vectors, teacher_vectors) -> torch.Tensor:
    """L = 1/B · Σ_b (1 − cos(P·e_s,b, e_t,b)): the direction alone, which is what cosine search compares."""
    return (1 - F.cosine_similarity(student_vectors.float(), teacher_vectors.float(), dim=-1)).mean()


def _teacher_vector(batch: LossInputs) -> torch.Tensor:
    """The teacher's embedding; with several teachers of one width, their weighted mean."""
    return _mean_teacher_logits(batch) if len(batch.teacher_logits) > 1 else batch.teacher_logits[0]
