"""What distilkit needs to know about each encoder family beyond what transformers' Auto classes say.

One entry per `config.model_type` that needs more than the defaults; a family without an entry is treated
like BERT. Adding a family is one entry here (and, for pruning, one layout in `models/pruned.py`; for attention
capture without transformers' attention interface, one class in `distillation/capture_eager.py`).

- `lora_targets`: LoRA's default target modules where peft has no default for the architecture.
- `shared_layers`: ALBERT applies one set of layer weights `num_hidden_layers` times, so "a student from
  teacher layers" means fewer repetitions of the shared layer, and per-layer operations (freezing the first N
  layers, pruning one layer's heads) do not exist.
- `layer_types`: ModernBERT's config lists each layer's attention kind (global or local); a student must list
  its own layers' kinds.
- `first_layer_differs`: ModernBERT's layer 0 has no attention LayerNorm, so a student from teacher layers must
  start with layer 0.
- `no_pruning` / `no_head_pruning`: why structured pruning does not apply (shown to the user as is).
"""

from __future__ import annotations

from dataclasses import dataclass

from distilkit.errors import DistilkitError


@dataclass(frozen=True)
class Family:
    lora_targets: tuple[str, ...] | None = None
    shared_layers: bool = False
    layer_types: bool = False
    first_layer_differs: bool = False
    no_pruning: str | None = None
    no_head_pruning: str | None = None


FAMILIES: dict[str, Family] = {
    "distilbert": Family(lora_targets=("q_lin", "v_lin")),
    "modernbert": Family(lora_targets=("Wqkv",), layer_types=True, first_layer_differs=True),
    "albert": Family(
        lora_targets=("query", "value"),
        shared_layers=True,
        no_pruning=(
            "albert shares one layer's weights across all its layers, so removing a head or neuron would remove it "
            "from every layer at once; make it smaller by distillation instead (distilkit distill --student 3, "
            "fewer repetitions, or --student 4L-312H-12A-1200F, a narrower ALBERT)"
        ),
    ),
    "mpnet": Family(
        lora_targets=("q", "v"),
        no_head_pruning=(
            "mpnet adds one relative-position bias per head, computed once and shared by all layers, so heads "
            "cannot be removed layer by layer; prune FFN neurons only (--ffn) or distil into fewer heads"
        ),
    ),
}
DEFAULT = Family()


def family(model_or_config) -> Family:
    config = getattr(model_or_config, "config", model_or_config)
    return FAMILIES.get(getattr(config, "model_type", ""), DEFAULT)


def layer_count(model) -> int:
    """How many transformer layers the encoder applies (ALBERT: repetitions of its shared layer)."""
    config = model.config
    return getattr(config, "num_hidden_layers", None) or config.n_layers


def check_shared_layers(model) -> None:
    """ALBERT students are fewer repetitions of the teacher's layer group: only one group makes that exact."""
    groups = getattr(model.config, "num_hidden_groups", 1)
    inner = getattr(model.config, "inner_group_num", 1)
    if groups != 1 or inner != 1:
        raise DistilkitError(
            f"{model.config.model_type}: a student from teacher layers needs one shared layer, this model has "
            f"{groups} groups of {inner}; use a size spec (--student 4L-312H-12A-1200F) or a model folder"
        )


def refuse_per_layer(model, what: str) -> None:
    """One line for per-layer operations on a model whose layers share weights."""
    if family(model).shared_layers:
        raise DistilkitError(
            f"{what}: {model.config.model_type} shares one set of weights across all {layer_count(model)} layers, "
            "so single layers cannot be frozen or changed; use --freeze-embeddings, or a model with its own layers"
        )


def student_layer_types(teacher_config, chosen: list[int] | None, layers: int) -> list[str] | None:
    """The student's `layer_types`: the copied layers' kinds, or the teacher's pattern from the bottom."""
    types = getattr(teacher_config, "layer_types", None)
    if not types:
        return None
    if chosen is not None:
        return [types[j] for j in chosen]
    return [types[i % len(types)] for i in range(layers)]


def check_copied_layers(teacher, chosen: list[int]) -> None:
    if family(teacher).first_layer_differs and chosen and chosen[0] != 0:
        raise DistilkitError(
            f"--student layers:{','.join(map(str, chosen))}: {teacher.config.model_type}'s first layer has no "
            "attention norm and the others do, so a student from teacher layers must start with layer 0 "
            f"(e.g. layers:0,{','.join(map(str, chosen[1:] or [1]))})"
        )
