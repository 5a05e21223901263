"""The loss registry: every distillation loss declares what it reads, and that is all the distiller needs.

A registered `Loss` has a name (what `--losses` and recipes use), the set of tensors it `reads`, and a `term`:
a function of one `LossInputs` (the uniform input of every loss) that returns a scalar. The distiller loops
over the active losses of a stage and calls their terms; what to capture from the models (hidden states,
attention scores, Q/K/V) and what the teacher cache stores follow from the union of their `reads`. So a new
loss is one registered function, with no edit anywhere else:

    from distilkit.losses import register_loss

    @register_loss("logit_l1", reads={"logits"})
    def logit_l1(batch):
        '''Mean absolute difference of student and (first) teacher logits.'''
        return (batch.student_logits.float() - batch.teacher_logits[0].float()).abs().mean()

and `distilkit distill --plugins my_losses.py --losses '{kd: 1, logit_l1: 0.5}' ...`.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import math
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from distilkit.errors import DistilkitError

# What a loss may read. "labels": the task's labels (the loss is skipped on batches without them, e.g. unlabeled
# text); "logits": student and teacher logits; "embeddings": hidden state 0 pairs; "hidden": mapped hidden
# states ≥ 1; "scores": pre-softmax attention scores of mapped attention layers; "qkv": Q/K/V of one layer pair.
READABLE = frozenset({"labels", "logits", "embeddings", "hidden", "scores", "qkv"})
# (student state, teacher state, projection or None); (Q, K, V) of one model, each [b, n, width]
HiddenPair = tuple[torch.Tensor, torch.Tensor, Optional[Callable[[torch.Tensor], torch.Tensor]]]
QKV = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
Term = Callable[["LossInputs"], torch.Tensor]


@dataclass
class LossInputs:
    """Everything a loss may read for one batch; the fields a plan's losses do not read stay empty.

    Hidden-state pairs are (student, teacher [b, n, d_t], projection or None). In a distillation the student's
    state comes already lifted to the teacher's width by its learned projection (StudentWithProjections.forward,
    where DistributedDataParallel can sync it) and the projection slot is None; a loss called directly on raw
    [b, n, d_s] states takes the projection there, as the built-in ones do. Score pairs are
    (student, teacher) of shape [b, heads, n, n]; `qkv` is ((q, k, v) of the student, (q, k, v) of the teacher),
    each [b, n, width].
    """

    mask: torch.Tensor  # [b, n], 1 = real token
    labels: torch.Tensor | None = None
    student_loss: torch.Tensor | None = None  # the task head's loss on the labels (CE; MSE for regression)
    student_logits: torch.Tensor | None = None
    teacher_logits: list[torch.Tensor | None] = field(default_factory=list)  # one entry per teacher
    teacher_weights: list[float] = field(default_factory=lambda: [1.0])
    embeddings: list[HiddenPair] = field(default_factory=list)
    hidden: list[HiddenPair] = field(default_factory=list)
    scores: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    qkv: tuple[QKV, QKV] | None = None
    temperature: float = 1.0
    relation_heads: int = 12
    attention_probabilities: bool = False
    normalize: bool = False  # MSE layer losses relative to the teacher's mean square (losses/builtin.py)
    token_level: bool = False
    regression: bool = False

    @property
    def token_mask(self) -> torch.Tensor | None:
        """Positions that count for per-token logit losses (labelled word-pieces, else real tokens); None for
        sequence-level logits."""
        if not self.token_level:
            return None
        return self.labels != -100 if self.labels is not None else self.mask


@dataclass(frozen=True)
class Loss:
    """A registered loss. Calling it calls its tensor formula (what the golden-value tests check)."""

    name: str
    reads: frozenset[str]
    term: Term
    formula: Callable[..., torch.Tensor] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return (self.formula or self.term)(*args, **kwargs)


LOSSES: dict[str, Loss] = {}


def register_loss(
    name: str, reads: Iterable[str], term: Term | None = None
) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Decorator registering a loss under `name`.

    Without `term`, the decorated function is the term itself: `fn(batch: LossInputs) -> scalar tensor`.
    With `term`, the decorated function is the loss's tensor formula and `term` reads its arguments from a batch.
    """
    declared = frozenset(reads)
    unknown = declared - READABLE
    if unknown or not declared:
        raise ValueError(
            f"loss {name!r}: reads must be a non-empty subset of {sorted(READABLE)}, got {sorted(declared)}"
        )

    def add(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} is registered twice")
        LOSSES[name] = Loss(name, declared, term or fn, fn if term else None)
        return fn

    return add


def where_defined(fn: Callable[..., Any]) -> str:
    """file:line of a loss function, so an error in the user's own loss points at it."""
    code = getattr(fn, "__code__", None)
    return f"{Path(code.co_filename).name}:{code.co_firstlineno}" if code else repr(fn)


def loss_value(loss: Loss, batch: LossInputs, where: str) -> torch.Tensor:
    """Call `loss`'s term on `batch` and hold it to the contract of a loss: a finite scalar tensor, on the autograd
    graph while training. A loss that raises, returns something else or a NaN is one DistilkitError line naming
    the loss, where it is defined, what it returned and at which `where` (e.g. "step 12")."""
    name = f"loss {loss.name!r} ({where_defined(loss.term)})"
    try:
        value = loss.term(batch)
    except DistilkitError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's code: name it, one line
        frame = traceback.extract_tb(err.__traceback__)[-1]
        first = (str(err).strip().splitlines() or [""])[0]
        raise DistilkitError(
            f"{name} raised {type(err).__name__}: {first} (at {Path(frame.filename).name}:{frame.lineno}, "
            f"{where}); fix the loss or leave it out of --losses"
        ) from err
    if not isinstance(value, torch.Tensor):
        raise DistilkitError(
            f"{name} returned {type(value).__name__} {value!r:.60}, not a tensor; return a scalar torch tensor "
            "computed from the batch's tensors (so that it has gradients)"
        )
    if value.numel() != 1:
        raise DistilkitError(
            f"{name} returned a tensor of shape {list(value.shape)}; a loss must return one number (a scalar "
            "tensor): reduce it, e.g. with .mean()"
        )
    value = value.reshape(())
    if torch.is_grad_enabled() and not value.requires_grad:
        raise DistilkitError(
            f"{name} returned a tensor without gradients (not computed from the student's outputs), so it cannot "
            "train anything; compute it from the batch's student tensors"
        )
    number = float(value.detach())
    if not math.isfinite(number):
        raise DistilkitError(
            f"{name} is {number} at {where}; nothing was saved: check the loss for a division by zero or a log of "
            "0, or lower its weight and --lr"
        )
    return value


def build_loss(name: str) -> Loss:
    """The registered loss `name`, or one error line with the closest name and the registered ones."""
    if name not in LOSSES:
        close = difflib.get_close_matches(name, list(LOSSES), 1)
        raise DistilkitError(
            f"unknown loss {name!r}"
            + (f"; did you mean {close[0]!r}?" if close else "")
            + f" (available: {', '.join(sorted(LOSSES))}; register your own with --plugins)"
        )
    return LOSSES[name]


def reads_of(names: Iterable[str]) -> frozenset[str]:
    """The union of what the named losses read."""
    return frozenset().union(*(build_loss(n).reads for n in names))


def import_plugins(plugins: str | None) -> None:
    """Import the user's modules (comma-separated dotted names or .py files) so the losses they register become
    available."""
    for plugin in [p.strip() for p in (plugins or "").split(",") if p.strip()]:
        try:
            if plugin.endswith(".py") or "/" in plugin:
                path = Path(plugin)
                if not path.is_file():
                    raise DistilkitError(f"--plugins {plugin}: file not found")
                name = f"distilkit_plugin_{path.stem}"
                if name in sys.modules:
                    continue
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise DistilkitError(f"--plugins {plugin}: cannot be imported as a Python module")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(plugin)
        except DistilkitError:
            raise
        except Exception as err:  # noqa: BLE001 - a broken plugin is the user's to fix: name it, one line
            first = (str(err).strip().splitlines() or [""])[0]
            raise DistilkitError(f"--plugins {plugin}: importing it failed ({type(err).__name__}: {first})") from None
