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

from distilkit.distillation import capture
from distilkit.distillation.cache import CacheSpec
from distilkit.distillation.layer_map import LayerMap
from distilkit.losses.registry import LOSSES, LossInputs, loss_value, reads_of

INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
SENTENCE = "sentence"  # the projection of an embedding model's pooled vector (the others are keyed by layer)


@dataclass
class LossPlan:
    """Which losses, with which weights, over which layers. What to capture and cache follows from the
    union of what the active losses read (losses/registry.py)."""

    weights: dict[str, float]
    layer_map: LayerMap
    temperature: float = 1.0
    relation_heads: int = 12
    attention_probabilities: bool = False
    normalize: bool = False
    token_level: bool = False
    regression: bool = False
    embedding: bool = False  # the logits are sentence embeddings (embeddings/model.py)
    teacher_weights: list[float] = field(default_factory=lambda: [1.0])

    @property
    def active(self) -> list[str]:
        return [name for name, weight in self.weights.items() if weight > 0]

    @property
    def reads(self) -> frozenset[str]:
        return reads_of(self.active)

    @property
    def hidden_pairs(self):
        pairs = []
        if "embeddings" in self.reads:
            pairs += [p for p in self.layer_map.hidden if p[0] == 0]
        if "hidden" in self.reads:
            pairs += [p for p in self.layer_map.hidden if p[0] > 0]
        return sorted(set(pairs))

    @property
    def needs_hidden(self) -> bool:
        return bool(self.hidden_pairs)

    @property
    def needs_scores(self) -> bool:
        return "scores" in self.reads

    @property
    def needs_qkv(self) -> bool:
        return "qkv" in self.reads

    @property
    def relation_pair(self) -> tuple[int, int]:
        """MiniLMv2 distils the relations of one layer: the last mapped attention layer."""
        return self.layer_map.attention[-1]

    def cache_spec(self, logits: bool) -> CacheSpec:
        """The teacher outputs these losses read, as the cache stores them."""
        return CacheSpec(
            logits=logits,
            hidden=tuple(sorted({t for _, t in self.hidden_pairs})),
            scores=tuple(t for _, t in self.layer_map.attention) if self.needs_scores else (),
            qkv=(self.relation_pair[1],) if self.needs_qkv else (),
        )


class StudentWithProjections(nn.Module):
    """The student plus the linear maps that lift its hidden states to the teacher's width."""

    def __init__(self, student, projections: nn.ModuleDict):
        super().__init__()
        self.student = student
        self.projections = projections
        self.config = student.config  # the Trainer reads a few config fields

    def forward(self, **inputs):
        """The student's outputs; when it returns hidden states, each one with a projection comes back lifted to
        the teacher's width (H_s · W). The projections run here, inside forward, because several processes wrap
        this module in DistributedDataParallel, which expects its parameters to be used in forward; the lifted
        states travel in `hidden_states`, a field that survives the wrappers' rebuilding of the output."""
        out = self.student(**inputs)
        if SENTENCE in self.projections:
            out.logits = self.projections[SENTENCE](out.logits)
        layers = {s: w for s, w in self.projections.items() if s != SENTENCE}
        if layers and getattr(out, "hidden_states", None) is not None:
            hidden = list(out.hidden_states)
            for s, w in layers.items():
                hidden[int(s)] = w(hidden[int(s)])
            out.hidden_states = tuple(hidden)
        return out

    def get_input_embeddings(self):
        return self.student.get_input_embeddings()


def make_projections(plan: LossPlan, student_width: int, teacher_width: int) -> nn.ModuleDict:
    """One Linear per mapped hidden state when widths differ (TinyBERT's W_h, W_e), and one for the sentence
    embedding of an embedding model (sentence-transformers' learned projection); none when equal."""
    if student_width == teacher_width:
        return nn.ModuleDict()
    projections = {str(s): nn.Linear(student_width, teacher_width) for s, _ in plan.hidden_pairs}
    if plan.embedding:
        projections[SENTENCE] = nn.Linear(student_width, teacher_width)
    return nn.ModuleDict(projections)


def labelled_loss(logits, labels, labeled, regression: bool):
    """The task loss of a batch that mixes in transfer-set rows (`labeled` False), per example of the whole batch:

        L_CE = 1/N · Σ_{labelled i} CE_i        (N = examples, or labelled word-pieces for token classification)

    so every example weighs the same in α·CE + (1−α)·KD whether or not it has a label, and a fully labelled batch
    gives the usual mean. CE per word-piece for token classification; squared error for regression. None when
    no row of the batch is labelled."""
    if not bool(labeled.any()):
        return None
    logits = logits.float()
    if regression:
        errors = (logits.squeeze(-1) - labels.float()) ** 2
        return errors[labeled].sum() / labeled.numel()
    flat_logits, flat_labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    per_piece = nn.functional.cross_entropy(flat_logits, flat_labels, ignore_index=-100, reduction="none")
    counted = flat_labels != -100  # every example (sequence) or every word's first piece (tokens)
    in_labelled_row = labeled.reshape(-1, *([1] * (labels.dim() - 1))).expand_as(labels).reshape(-1)
    return per_piece[counted & in_labelled_row].sum() / counted.sum().clamp_min(1)


class Distiller(Trainer):
    def __init__(self, *args, plan: LossPlan, teachers: list, caches: list | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.plan = plan
        self.teachers = teachers
        # one TeacherCache per teacher (intermediate outputs in the first); None: not built yet
        self.caches: list | None = caches or []
        self._parts: dict[str, list[float]] = defaultdict(list)
        for teacher in teachers:
            teacher.eval()
            teacher.requires_grad_(False)

    # ---- teacher outputs: cache first, live forward otherwise ----

    def _teacher_outputs(self, inputs, example_ids) -> dict:
        seq_len = inputs["input_ids"].shape[1]
        device = inputs["input_ids"].device
        plan, out, caches = self.plan, {}, self.caches or []  # None: not built yet
        cached = len(caches) == len(self.teachers) and example_ids is not None
        cache = caches[0] if cached else None
        hidden_needed = [t for _, t in plan.hidden_pairs]
        live_needed = not cached or any(not cache.has(name) for name in plan.cache_spec(logits=False).names())
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
            out["logits"] = [
                c.get("logits", example_ids, seq_len).to(device) if c.has("logits") else None for c in caches
            ]
            out["hidden"] = {t: cache.get(f"hidden_{t}", example_ids, seq_len).to(device) for t in hidden_needed}
            out["scores"] = (
                {t: cache.get(f"scores_{t}", example_ids, seq_len).to(device) for _, t in plan.layer_map.attention}
                if plan.needs_scores
                else {}
            )
            if plan.needs_qkv:
                t = plan.relation_pair[1]
                qkv = tuple(cache.get(f"{p}_{t}", example_ids, seq_len).to(device) for p in "qkv")
                out["qkv"] = {t: qkv}
        return out

    # ---- the loss ----

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """L = Σ_active weight · term(batch): each active loss reads what it declared from one LossInputs."""
        plan = self.plan
        inputs = dict(inputs)
        example_ids = inputs.pop("example_id", None)
        labeled = inputs.pop("labeled", None)  # present with a transfer set: 0 = unlabeled (teacher-labelled) row
        mixed = labeled is not None and not bool(labeled.all())
        labels = inputs.get("labels")
        if labels is None or "ce" not in plan.active or mixed:
            inputs.pop("labels", None)
        with capture.recording(scores=plan.needs_scores, qkv=plan.needs_qkv) as rec:
            student_out = model(**inputs, output_hidden_states=plan.needs_hidden)
        if mixed and "ce" in plan.active:
            student_out.loss = labelled_loss(student_out.logits, labels, labeled.bool(), plan.regression)
        teacher = self._teacher_outputs(inputs, None if example_ids is None else example_ids.cpu().numpy())
        batch = self.loss_inputs(inputs["attention_mask"], labels, student_out, rec, teacher)
        has_labels = labels is not None and (not mixed or bool(labeled.any()))
        state = getattr(self, "state", None)  # None when the loss is computed outside train()
        where = f"step {state.global_step + 1}" if state is not None else "this batch"
        parts = {
            name: loss_value(LOSSES[name], batch, where)
            for name in plan.active
            if has_labels or "labels" not in LOSSES[name].reads
        }
        total = sum(plan.weights[name] * value for name, value in parts.items())
        for name, value in parts.items():
            self._parts[name].append(float(value.detach()))
        return (total, student_out) if return_outputs else total

    def loss_inputs(self, mask, labels, student_out, rec, teacher: dict) -> LossInputs:
        """Pair the student's and teachers' tensors the way the layer map says, for the losses to read."""
        plan = self.plan
        # student hidden states come already lifted to the teacher's width (StudentWithProjections.forward)
        pairs = {s: (student_out.hidden_states[s], teacher["hidden"][t], None) for s, t in plan.hidden_pairs}
        relation = None
        if plan.needs_qkv:
            s, t = plan.relation_pair
            relation = (rec.queries_keys_values[s], teacher["qkv"][t])
        return LossInputs(
            mask=mask,
            labels=labels,
            student_loss=getattr(student_out, "loss", None),
            student_logits=getattr(student_out, "logits", None),
            teacher_logits=teacher["logits"],
            teacher_weights=plan.teacher_weights,
            embeddings=[pairs[s] for s in pairs if s == 0],
            hidden=[pairs[s] for s in pairs if s > 0],
            scores=[(rec.attention_scores[s], teacher["scores"][t]) for s, t in plan.layer_map.attention]
            if plan.needs_scores
            else [],
            qkv=relation,
            temperature=plan.temperature,
            relation_heads=plan.relation_heads,
            attention_probabilities=plan.attention_probabilities,
            normalize=plan.normalize,
            token_level=plan.token_level,
            regression=plan.regression,
        )

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
