"""Which student layer learns from which teacher layer.

Indices follow `output_hidden_states`: hidden state 0 is the embedding output, hidden state i (1..L) the
output of layer i. Attention layers are numbered 0..L−1 (attention of layer i+1 produces hidden state i+1).

- `uniform` (TinyBERT, Jiao et al. 2020): with k = L_t / L_s, student layer m ↔ teacher layer m·k;
  hidden state m ↔ teacher hidden state m·k (m = 0 is the embedding loss), and student attention layer
  m−1 ↔ teacher attention layer m·k − 1 (the attention inside the mapped layer).
- `copied`: for a student built from teacher layers (`--student 3`, `half`, `layers:0,2,4`), each student layer
  learns from the teacher layer it was copied from: student layer i, a copy of teacher layer c_i, gives hidden
  state i+1 ↔ teacher hidden state c_i+1 and attention layer i ↔ teacher attention layer c_i (embeddings 0 ↔ 0).
  Pulling a copy of layer 0 toward the output of layer 1 (what `uniform` does to a 0,2,4 student) fights its
  own initialisation. The benchmark suite chose it over `uniform` for tinybert on the dev splits of five tasks
  (benchmarks/suite.py; docs/results.md, "Defaults decided on the suite").
- `auto` (the default of the layer-wise methods): `copied` when the student was copied from teacher layers,
  else `uniform`.
- `last`: only the last layers (hidden and attention) are matched, as MiniLM does.
- an explicit list `"1:2,2:4,3:6"`: student hidden state : teacher hidden state pairs (attention follows
  the same layers, embeddings are matched only if "0:0" is listed).
"""

from __future__ import annotations

from dataclasses import dataclass

from distilkit.errors import DistilkitError


@dataclass(frozen=True)
class LayerMap:
    """Pairs (student index, teacher index) for hidden states and for attention layers."""

    hidden: tuple[tuple[int, int], ...]
    attention: tuple[tuple[int, int], ...]
    name: str = "explicit"

    def describe(self) -> str:
        hidden = ", ".join(f"{s}←{t}" for s, t in self.hidden)
        attention = ", ".join(f"{s}←{t}" for s, t in self.attention)
        return f"{self.name}: hidden states (student←teacher): {hidden}; attention layers: {attention}"


NAMED = ("auto", "copied", "uniform", "last")


def build_layer_map(
    spec: str, student_layers: int, teacher_layers: int, copied_from: list[int] | None = None
) -> LayerMap:
    """Parse and validate a layer map against both models' layer counts.

    `copied_from` lists the teacher layer each student layer was copied from (None for a random or
    pretrained student); `copied` needs it and `auto` uses it when there is one.
    """
    if spec == "auto":
        spec = "copied" if copied_from else "uniform"
    if spec == "copied":
        if not copied_from or len(copied_from) != student_layers:
            raise DistilkitError(
                "--layer-map copied: the student was not built from teacher layers (use --student N, half or "
                "layers:0,2,4), so there is nothing to follow; use uniform, last or explicit pairs"
            )
        hidden = ((0, 0),) + tuple((i + 1, c + 1) for i, c in enumerate(copied_from))
    elif spec == "uniform":
        if teacher_layers % student_layers:
            raise DistilkitError(
                f"--layer-map uniform: the teacher's {teacher_layers} layers are not a multiple of the student's "
                f"{student_layers}; give an explicit map such as "
                + ",".join(f"{m}:{round(m * teacher_layers / student_layers)}" for m in range(student_layers + 1))
            )
        k = teacher_layers // student_layers
        hidden = tuple((m, m * k) for m in range(student_layers + 1))
    elif spec == "last":
        hidden = ((student_layers, teacher_layers),)
    else:
        try:
            hidden = tuple(tuple(int(x) for x in pair.split(":")) for pair in spec.split(","))
        except ValueError:
            hidden = ()
        if not hidden or any(len(p) != 2 for p in hidden):
            raise DistilkitError(
                f"--layer-map {spec!r}: use auto, copied, uniform, last, or student:teacher pairs of hidden-state "
                "indices like 0:0,1:2,2:4,3:6 (0 = embeddings)"
            )
    seen: dict[int, tuple[int, int]] = {}
    for pair in hidden:  # the losses pair each student state with one teacher state: a second would be dropped
        if pair[0] in seen:
            twice = (
                "twice"
                if seen[pair[0]] == pair
                else f"twice ({seen[pair[0]][0]}:{seen[pair[0]][1]} and {pair[0]}:{pair[1]})"
            )
            raise DistilkitError(
                f"--layer-map {spec!r}: student hidden state {pair[0]} is mapped {twice}; give each student state "
                "one teacher state"
            )
        seen[pair[0]] = pair
    for s, t in hidden:
        if not 0 <= s <= student_layers or not 0 <= t <= teacher_layers:
            raise DistilkitError(
                f"--layer-map {spec!r}: pair {s}:{t} is out of range; the student has hidden states "
                f"0..{student_layers} "
                f"and the teacher 0..{teacher_layers} (0 = embeddings)"
            )
        if (s == 0) != (t == 0):
            raise DistilkitError(f"--layer-map {spec!r}: pair {s}:{t} maps embeddings to a transformer layer")
    attention = tuple((s - 1, t - 1) for s, t in hidden if s > 0)
    return LayerMap(hidden=hidden, attention=attention, name=spec if spec in NAMED else "explicit")
