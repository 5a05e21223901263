"""Building a student: from a size spec, from chosen teacher layers, or from any pretrained folder.

Student specs (`--student`):
- `4L-312H-12A-1200F` — the teacher's architecture with these sizes (layers, hidden, heads, FFN), randomly
  initialised; it shares the teacher's tokenizer and vocabulary (TinyBERT-4 is 4L-312H-12A-1200F);
- `3` — DistilBERT-style: 3 layers initialised from a uniform choice of teacher layers (0,2,4 of 6);
- `half` (the default) — the same with half the teacher's layers;
- `layers:0,2,4` — the same with an explicit choice of teacher layers (DistilBERT used 0,2,4,7,9,11 of 12);
- anything else — a model folder or hub id loaded with `from_pretrained` (a pretrained small model).

The student always gets the teacher's label map and problem type, so its head matches the teacher's.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import torch

from distilkit.errors import DistilkitError
from distilkit.models import encoder_layers, load_model, resolve_model
from distilkit.models.families import check_copied_layers, check_shared_layers, family, layer_count, student_layer_types

SIZE_SPEC = re.compile(r"^(\d+)L-(\d+)H(?:-(\d+)A)?(?:-(\d+)F)?$", re.IGNORECASE)


def is_pretrained_spec(spec: str) -> bool:
    """True when --student names a model folder or hub id rather than a spec built from the teacher."""
    spec = str(spec).strip()
    return not (SIZE_SPEC.match(spec) or spec.isdigit() or spec.startswith("layers:") or spec == "half")


def uniform_layers(teacher_layers: int, n: int) -> list[int]:
    """n teacher layers spread evenly from the bottom: every k-th when k = L/n is whole (0,2,4 of 6)."""
    if not 0 < n <= teacher_layers:
        raise DistilkitError(
            f"--student {n}: choose between 1 and {teacher_layers} layers (the teacher has {teacher_layers})"
        )
    if teacher_layers % n == 0:
        k = teacher_layers // n
        return [i * k for i in range(n)]
    return [round(i * (teacher_layers - 1) / max(n - 1, 1)) for i in range(n)]


def copied_layers(spec: str, teacher_layers: int) -> list[int] | None:
    """The teacher layers a `--student` spec copies (`3`, `half`, `layers:0,2,4`), or None when it copies none."""
    spec = str(spec).strip()
    if spec == "half":
        spec = str(max(teacher_layers // 2, 1))
    if spec.isdigit():
        return uniform_layers(teacher_layers, int(spec))
    if spec.startswith("layers:"):
        try:
            return [int(x) for x in spec.removeprefix("layers:").split(",")]
        except ValueError:
            raise DistilkitError(f"--student {spec!r}: write teacher layers as layers:0,2,4") from None
    return None


def _set_layers(config, layers: int, chosen: list[int] | None = None) -> None:
    """Set the layer count, and with it the per-layer attention kinds of a config that lists them (ModernBERT)."""
    types = student_layer_types(config, chosen, layers)
    if types is not None:
        config.__dict__["num_hidden_layers"] = layers  # both change together; the config validates their match
        config.layer_types = types
    config.num_hidden_layers = layers


def _set_size(config, layers: int, hidden: int, heads: int | None, ffn: int | None) -> None:
    heads = heads or config.num_attention_heads
    if hidden % heads:
        raise DistilkitError(f"student hidden size {hidden} is not a multiple of its {heads} attention heads")
    _set_layers(config, layers)
    config.hidden_size = hidden
    config.num_attention_heads = heads
    ffn = ffn or 4 * hidden
    for name in ("intermediate_size", "hidden_dim"):  # BERT-style and DistilBERT-style names
        if hasattr(config, name):
            setattr(config, name, ffn)
    if hasattr(config, "embedding_size"):  # ALBERT/ELECTRA-style factorised embeddings follow the width
        config.embedding_size = hidden
    if hasattr(config, "pooler_hidden_size"):  # DeBERTa's pooler keeps its own width
        config.pooler_hidden_size = hidden


def _layer_prefix(model) -> str:
    layers = encoder_layers(model)
    return next(name for name, module in model.named_modules() if module is layers)


def student_from_layers(teacher, chosen: list[int]):
    """A copy of the teacher keeping only the chosen transformer layers (embeddings and head kept).

    ALBERT's layers share one set of weights: its student is the same weights applied len(chosen) times."""
    n_teacher = layer_count(teacher)
    bad = [j for j in chosen if not 0 <= j < n_teacher]
    if bad or not chosen:
        raise DistilkitError(f"--student layers:{','.join(map(str, chosen))}: teacher layers are 0..{n_teacher - 1}")
    check_copied_layers(teacher, chosen)
    config = copy.deepcopy(teacher.config)
    _set_layers(config, len(chosen), chosen)
    if family(teacher).shared_layers:
        check_shared_layers(teacher)
        student = type(teacher)(config)
        student.load_state_dict(teacher.state_dict(), strict=True)
        return student
    student = type(teacher)(config)
    prefix = _layer_prefix(teacher)
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.*)$")
    index = {j: i for i, j in enumerate(chosen)}
    state = {}
    for key, value in teacher.state_dict().items():
        match = pattern.match(key)
        if match is None:
            state[key] = value.clone()
        elif int(match.group(1)) in index:
            state[f"{prefix}.{index[int(match.group(1))]}.{match.group(2)}"] = value.clone()
    student.load_state_dict(state, strict=True)
    return student


def build_student(spec: str, teacher, task: str, seed: int = 42):
    """Return (student model, a one-line description of how it was built)."""
    spec = str(spec).strip()
    size = SIZE_SPEC.match(spec)
    n_teacher = layer_count(teacher)
    if size:
        layers, hidden, heads, ffn = (int(g) if g else None for g in size.groups())
        config = copy.deepcopy(teacher.config)
        _set_size(config, layers, hidden, heads, ffn)
        torch.manual_seed(seed)
        student = type(teacher)(config)
        return (
            student,
            f"random init, {layers} layers, hidden {hidden}, {config.num_attention_heads} heads, "
            f"FFN {ffn or 4 * hidden}",
        )
    chosen = copied_layers(spec, n_teacher)
    if chosen is not None:
        student = student_from_layers(teacher, chosen)
        student.distilkit_copied_layers = list(chosen)  # for the `copied` layer map (DistillationTrainer reads it)
        return student, f"teacher layers {chosen} (+ embeddings and task head)"
    if re.match(r"^\d+[LHAF]", spec, re.IGNORECASE) and not Path(spec).exists():  # "99L", "4L-312": a size spec typo
        raise DistilkitError(
            f"--student {spec!r}: not a size spec; write layers-hidden[-heads][-FFN] such as "
            "4L-312H-12A-1200F, a layer count such as 3, half, layers:0,2,4, or a model folder"
        )
    labels = [teacher.config.id2label[i] for i in range(teacher.config.num_labels)]
    regression = getattr(teacher.config, "problem_type", None) == "regression"
    path = resolve_model(spec)
    student = load_model(path, task, None if regression else labels, regression)
    return student, f"pretrained {spec}"
