"""The Distiller: a Hugging Face `Trainer` whose `compute_loss` mixes the label loss with distillation losses.

    L = w_ce·CE(student, labels) + w_kd·T²·KL(teacher ‖ student) + Σ_pairs w_x·L_x(student layer, teacher layer)

The Trainer trains a small wrapper (`StudentWithProjections`) so that the learned projections (student width
→ teacher width) are optimised and checkpointed with the student; only the student is saved at the end.
Teachers stay frozen, in eval mode, on the student's device. Teacher outputs come from the on-disk cache
when it holds them, else from a live forward pass.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import Trainer

from distilkit.distill import capture
from distilkit.distill.layer_map import LayerMap
from distilkit.distill.losses import LOSSES

INTERMEDIATE = ("embedding_mse", "hidden_mse", "hidden_cosine", "attention_mse", "minilm_relations")
INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class LossPlan:
    """Which losses, with which weights, over which layers."""

    weights: dict[str, float]
    layer_map: LayerMap
    temperature: float = 1.0
    relation_heads: int = 12
    attention_probabilities: bool = False
    token_level: bool = False
    regression: bool = False
    teacher_weights: list[float] = field(default_factory=lambda: [1.0])

    def active(self, name: str) -> bool:
        return self.weights.get(name, 0.0) > 0

    @property
    def hidden_pairs(self):
        pairs = []
        if self.active("embedding_mse"):
            pairs += [p for p in self.layer_map.hidden if p[0] == 0]
        if self.active("hidden_mse") or self.active("hidden_cosine"):
            pairs += [p for p in self.layer_map.hidden if p[0] > 0]
        return sorted(set(pairs))

    @property
    def needs_hidden(self) -> bool:
        return bool(self.hidden_pairs)

    @property
    def needs_scores(self) -> bool:
        return self.active("attention_mse")

    @property
    def needs_qkv(self) -> bool:
        return self.active("minilm_relations")

    @property
    def relation_pair(self) -> tuple[int, int]:
        """MiniLMv2 distils the relations of one layer: the last mapped attention layer."""
        return self.layer_map.attention[-1]


class StudentWithProjections(nn.Module):
    """The student plus the linear maps that lift its hidden states to the teacher's width."""

    def __init__(self, student, projections: nn.ModuleDict):
        super().__init__()
        self.student = student
        self.projections = projections
        self.config = student.config  # the Trainer reads a few config fields

    def forward(self, **inputs):
        return self.student(**inputs)

    def get_input_embeddings(self):
        return self.student.get_input_embeddings()


def make_projections(plan: LossPlan, student_width: int, teacher_width: int) -> nn.ModuleDict:
    """One Linear per mapped hidden state when widths differ (TinyBERT's W_h, W_e); none when equal."""
    if student_width == teacher_width:
        return nn.ModuleDict()
    return nn.ModuleDict({str(s): nn.Linear(student_width, teacher_width) for s, _ in plan.hidden_pairs})


class Distiller(Trainer):
    def __init__(self, *args, plan: LossPlan, teachers: list, caches: list | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.plan = plan
        self.teachers = teachers
        self.caches = caches or []  # one TeacherCache per teacher (intermediate outputs in the first)
        self._parts: dict[str, list[float]] = defaultdict(list)
        for teacher in teachers:
            teacher.eval()
            teacher.requires_grad_(False)

    # ---- teacher outputs: cache first, live forward otherwise ----

    def _teacher_outputs(self, inputs, example_ids) -> dict:
        seq_len = inputs["input_ids"].shape[1]
        device = inputs["input_ids"].device
        plan, out = self.plan, {}
        cached = len(self.caches) == len(self.teachers) and example_ids is not None
        cache = self.caches[0] if cached else None
        hidden_needed = [t for _, t in plan.hidden_pairs]
        live_needed = not cached or any(
            not cache.has(name) for name in
            [f"hidden_{t}" for t in hidden_needed]
            + ([f"scores_{t}" for _, t in plan.layer_map.attention] if plan.needs_scores else [])
            + ([f"q_{plan.relation_pair[1]}"] if plan.needs_qkv else [])
        )
        if live_needed:
            batch = {k: v for k, v in inputs.items() if k in INPUT_KEYS}
            logits = []
            with torch.no_grad():
                for k, teacher in enumerate(self.teachers):
                    teacher.to(device)
                    record = k == 0  # intermediate losses learn from the first teacher
                    with capture.recording(scores=record and plan.needs_scores, qkv=record and plan.needs_qkv) as rec:
                        result = teacher(**batch, output_hidden_states=record and plan.needs_hidden)
                    logits.append(getattr(result, "logits", None))
                    if record:
                        out["hidden"] = {t: result.hidden_states[t] for t in hidden_needed} if plan.needs_hidden else {}
                        out["scores"] = rec.attention_scores
                        out["qkv"] = rec.queries_keys_values
            out["logits"] = logits
        else:
            out["logits"] = [c.get("logits", example_ids, seq_len).to(device) if c.has("logits") else None
                             for c in self.caches]
            out["hidden"] = {t: cache.get(f"hidden_{t}", example_ids, seq_len).to(device) for t in hidden_needed}
            out["scores"] = {t: cache.get(f"scores_{t}", example_ids, seq_len).to(device)
                             for _, t in plan.layer_map.attention} if plan.needs_scores else {}
            if plan.needs_qkv:
                t = plan.relation_pair[1]
                qkv = tuple(cache.get(f"{p}_{t}", example_ids, seq_len).to(device) for p in "qkv")
                out["qkv"] = {t: qkv}
        return out

    # ---- the loss ----

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        plan = self.plan
        inputs = dict(inputs)
        example_ids = inputs.pop("example_id", None)
        labels = inputs.get("labels")
        if labels is None or not plan.active("ce"):
            inputs.pop("labels", None)
        with capture.recording(scores=plan.needs_scores, qkv=plan.needs_qkv) as rec:
            student_out = model(**inputs, output_hidden_states=plan.needs_hidden)
        teacher = self._teacher_outputs(inputs, None if example_ids is None else example_ids.cpu().numpy())
        mask = inputs["attention_mask"]
        parts = {}
        if plan.active("ce") and labels is not None:
            parts["ce"] = student_out.loss
        if plan.active("kd"):
            token_mask = (labels != -100) if (plan.token_level and labels is not None) else (mask if plan.token_level else None)
            parts["kd"] = self._kd(student_out.logits, teacher["logits"], token_mask)
        projections = model.projections if hasattr(model, "projections") else {}
        for s, t in plan.hidden_pairs:
            proj = projections[str(s)] if str(s) in projections else None
            s_h, t_h = student_out.hidden_states[s], teacher["hidden"][t]
            if s == 0:
                parts["embedding_mse"] = LOSSES["embedding_mse"](s_h, t_h, mask, proj)
                continue
            for name in ("hidden_mse", "hidden_cosine"):
                if plan.active(name):
                    parts[name] = parts.get(name, 0) + LOSSES[name](s_h, t_h, mask, proj)
        if plan.needs_scores:
            scores = teacher["scores"]
            for s, t in plan.layer_map.attention:
                loss = LOSSES["attention_mse"](rec.attention_scores[s], scores[t], mask, plan.attention_probabilities)
                parts["attention_mse"] = parts.get("attention_mse", 0) + loss
        if plan.needs_qkv:
            s, t = plan.relation_pair
            t_qkv = teacher["qkv"][t]
            parts["minilm_relations"] = LOSSES["minilm_relations"](rec.queries_keys_values[s], t_qkv,
                                                                   plan.relation_heads, mask)
        total = sum(plan.weights[name] * value for name, value in parts.items())
        for name, value in parts.items():
            self._parts[name].append(float(value.detach()))
        return (total, student_out) if return_outputs else total

    def _kd(self, student_logits, teacher_logits: list, mask):
        plan = self.plan
        if plan.regression:
            target = sum(w * t for w, t in zip(plan.teacher_weights, teacher_logits))
            return LOSSES["kd_mse"](student_logits, target, mask)
        if len(teacher_logits) == 1:
            return LOSSES["kd"](student_logits, teacher_logits[0], plan.temperature, mask)
        return LOSSES["kd_soft_targets"](student_logits, soft_targets(teacher_logits, plan.teacher_weights,
                                                                      plan.temperature), plan.temperature, mask)

    def _save(self, output_dir=None, state_dict=None):
        """Checkpoint the wrapper (student + projections). Tied weights (an MLM decoder sharing the word
        embeddings) are stored once: safetensors refuses shared tensors, and loading restores the tie."""
        if state_dict is None:
            state_dict, seen = {}, set()
            for name, tensor in self.model.state_dict().items():
                key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
                if key not in seen:
                    seen.add(key)
                    state_dict[name] = tensor
        super()._save(output_dir, state_dict)

    def log(self, logs, *args, **kwargs):
        """Add the mean of each loss component since the last log (e.g. loss_kd, loss_attention_mse)."""
        if "loss" in logs:
            for name, values in self._parts.items():
                if values:
                    logs[f"loss_{name}"] = round(sum(values) / len(values), 4)
            self._parts.clear()
        super().log(logs, *args, **kwargs)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Evaluation runs the student alone: its labels loss and logits, for the usual metrics."""
        inputs = {k: v for k, v in self._prepare_inputs(inputs).items() if k != "example_id"}
        with torch.no_grad():
            out = model(**inputs)
        logits = out.logits  # the evaluation loop applies preprocess_logits_for_metrics itself
        loss = out.loss.detach() if out.loss is not None else None
        return loss, (None if prediction_loss_only else logits), inputs.get("labels")


def soft_targets(teacher_logits: list, weights: list[float], temperature: float) -> torch.Tensor:
    """Multi-teacher soft targets: Σ_k w_k · softmax(z_k / T), weights normalised to sum to 1."""
    total = sum(weights)
    return sum((w / total) * torch.softmax(z.float() / temperature, dim=-1) for w, z in zip(weights, teacher_logits))
