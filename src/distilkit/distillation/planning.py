"""The plan of a distillation, from the models and the options alone: stages and their loss weights, the layer map,
the learned projections, what to capture and cache. `DistillationTrainer` builds it; `distilkit distill` builds
it first (to print it and to refuse a mismatch before the run folder exists) and hands it to the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from distilkit.distillation import capture, checks
from distilkit.distillation.distiller import LossPlan, make_projections
from distilkit.distillation.layer_map import LayerMap, build_layer_map
from distilkit.distillation.methods import METHODS, Stage, default_relation_heads, resolve_stages
from distilkit.errors import DistilkitError
from distilkit.losses.registry import reads_of
from distilkit.models.families import layer_count

TOK = "token-classification"
EMBEDDING = "embedding"


@dataclass
class Distillation:
    """Everything the trainer needs besides the models and the data; `loss_plan(stage)` gives a stage's losses."""

    stages: list[Stage]
    layer_map: LayerMap
    common: dict  # the LossPlan options every stage shares
    projections: nn.ModuleDict
    dims: dict  # what the teacher cache stores per example (task, token_level, hidden, heads, labels)
    normalize: bool
    probabilities: bool
    task: str
    uses_mlm: bool = False
    weights_all: set[str] = field(default_factory=set)

    @property
    def reads(self) -> frozenset[str]:
        return reads_of(self.weights_all)

    @property
    def logits_only(self) -> bool:
        return self.reads <= {"labels", "logits"}

    @property
    def union_plan(self) -> LossPlan:
        """One plan covering every stage: it sizes the projections and the cache, so all stages share one cache."""
        return LossPlan(weights={k: 1.0 for k in self.weights_all}, **self.common)

    def loss_plan(self, stage: Stage) -> LossPlan:
        return LossPlan(stage.weights, **self.common)


def teacher_task(teacher) -> tuple[str, bool, bool]:
    """(task, regression, masked-LM) of a teacher, from its class and config: a token or sequence classifier, or
    a bare encoder / masked-LM model (general distillation)."""
    name = type(teacher).__name__
    if getattr(teacher, "distilkit_embedding", False):  # embeddings/model.py: pooled sentence vectors as logits
        return EMBEDDING, False, False
    if name.endswith("ForTokenClassification"):
        return TOK, False, False
    if name.endswith("ForSequenceClassification"):
        return "sequence-classification", teacher.config.problem_type == "regression", False
    return "general", False, name.endswith("ForMaskedLM")


def default_normalize(method, copied: list[int] | None) -> bool:
    """The method's MSE scale: its own for students from teacher layers where it has one (methods.py)."""
    return method.normalize_copied if copied is not None and method.normalize_copied is not None else method.normalize


def teacher_weights(weights, n: int) -> list[float]:
    """Weights of n teachers' soft targets: equal by default; else n non-negative numbers, not all 0."""
    if not weights:
        return [1.0] * n
    try:
        values = [float(w) for w in (weights.split(",") if isinstance(weights, str) else weights)]
    except (TypeError, ValueError):
        values = []
    if len(values) != n or any(w < 0 for w in values) or sum(values) <= 0:
        raise DistilkitError(f"--teacher-weights {weights!r}: give {n} non-negative numbers, one per teacher")
    return values


def plan_distillation(student, teachers: list, args, copied_layers: list[int] | None = None) -> Distillation:
    """The plan for distilling `teachers` (torch models, the first leads) into `student` with `args`
    (DistillationArguments, or any object with its fields). `copied_layers`: the teacher layers the student was
    built from (distilkit's `build_student` records them on the student), for the `copied` layer map. Switches the
    models to distilkit's capturing attention when a loss reads attention scores or Q/K/V."""
    lead = teachers[0]
    task, regression, uses_mlm = teacher_task(lead)
    stages = resolve_stages(args.method, args.alpha, args.losses, task == "general", task == EMBEDDING)
    if uses_mlm:
        stages[-1].weights["kd"] = 1.0  # MLM-logit KD per token
    method = METHODS[args.method]
    weights_all = {k for s in stages for k in s.weights}
    reads = reads_of(weights_all)
    copied = copied_layers if copied_layers is not None else getattr(student, "distilkit_copied_layers", None)
    layer_map = build_layer_map(args.layer_map or method.layer_map, layer_count(student), layer_count(lead), copied)
    checks.check_heads(student, lead, "scores" in reads)
    teacher_config = lead.config
    common = dict(
        layer_map=layer_map,
        temperature=method.temperature if args.temperature is None else args.temperature,
        attention_probabilities=(
            method.attention_probabilities if args.attention_probabilities is None else args.attention_probabilities
        ),
        normalize=default_normalize(method, copied) if args.normalize_losses is None else args.normalize_losses,
        token_level=task == TOK or uses_mlm,
        regression=regression,
        embedding=task == EMBEDDING,
        teacher_weights=teacher_weights(args.teacher_weights, len(teachers)),
        relation_heads=args.relation_heads
        or default_relation_heads(
            student.config.hidden_size, teacher_config.hidden_size, teacher_config.num_attention_heads
        ),
    )
    union = LossPlan(weights={k: 1.0 for k in weights_all}, **common)
    if reads & {"scores", "qkv"}:
        for model in (student, *teachers):
            capture.enable(model)
    labels = teacher_config.vocab_size if uses_mlm else (1 if regression else teacher_config.num_labels)
    if task == EMBEDDING:
        labels = lead.width  # one pooled vector per text
    dims = {
        "task": task,
        "token_level": task == TOK or uses_mlm,
        "hidden": teacher_config.hidden_size,
        "heads": teacher_config.num_attention_heads,
        "labels": labels if task != "general" or uses_mlm else 0,
    }
    return Distillation(
        stages=stages,
        layer_map=layer_map,
        common=common,
        projections=make_projections(union, student.config.hidden_size, teacher_config.hidden_size),
        dims=dims,
        normalize=common["normalize"],
        probabilities=common["attention_probabilities"],
        task=task,
        uses_mlm=uses_mlm,
        weights_all=weights_all,
    )
