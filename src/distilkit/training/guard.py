"""Training stops at the first non-finite loss or gradient, and a non-finite model is never saved.

A NaN spreads: one NaN gradient step makes every weight NaN, and the Trainer's `logging_nan_inf_filter` then hides
it (the logged loss reads 0 or the previous mean), so without these checks a run finishes with exit 0 and a
model whose every parameter is NaN. Three checks, cheap next to a training step:

- the loss of every step (`FiniteLossMixin.training_step`; the Distiller checks each loss part first, so the line
  names the part);
- the gradients before every optimizer step (`FiniteGradients`, one fused norm per step). Skipped under fp16,
  where the loss scaler expects overflowing gradients now and then and skips those steps itself;
- the weights before they are saved (`check_finite_weights`).
"""

from __future__ import annotations

import torch
from transformers import TrainerCallback

from distilkit.errors import DistilkitError
from distilkit.models.validate import nonfinite_parameters

ADVICE = "training diverged: try a lower --lr, keep --max-grad-norm at 1 or lower it, or --precision fp32"
GRADIENT_ADVICE = (
    "a loss without a finite gradient there (a sqrt, log or division at 0 in your own loss?) or a diverging run: "
    "check your --losses, try a lower --lr or --precision fp32"
)


def _step(state) -> str:
    return f"step {state.global_step + 1}" + (f" of {state.max_steps}" if state.max_steps else "")


class FiniteGradients(TrainerCallback):
    """Before each optimizer step: every gradient must be finite, else stop naming the first bad parameter."""

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if args.fp16 or model is None:
            return
        named = [(name, p.grad) for name, p in model.named_parameters() if p.grad is not None]
        if not named:
            return
        norms = torch._foreach_norm([g for _, g in named])  # one pass, as gradient clipping does
        if bool(torch.isfinite(torch.stack(norms)).all()):
            return
        bad = next(name for (name, _), norm in zip(named, norms) if not torch.isfinite(norm))
        raise DistilkitError(
            f"the gradient of {bad} is not finite (NaN or infinite) at {_step(state)}, so the next update would "
            f"break the model; nothing was saved: {GRADIENT_ADVICE}"
        )


class FiniteLossMixin:
    """The loss of each training step must be finite (a Trainer mixin: `guarded(Trainer)`)."""

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not bool(torch.isfinite(loss).all()):
            raise DistilkitError(
                f"the training loss is {float(loss.detach().float().reshape(-1)[0])} at {_step(self.state)}; "
                f"nothing was saved: {ADVICE}"
            )
        return loss


def guarded(trainer_class: type) -> type:
    """`trainer_class` with the loss and gradient checks of this module."""

    class Guarded(FiniteLossMixin, trainer_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(FiniteGradients())

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{trainer_class.__name__}"
    return Guarded


def check_finite_weights(model, what: str = "the trained model") -> None:
    """Refuse to save (or use) a model with a NaN or infinite parameter."""
    count, first = nonfinite_parameters(model)
    if count:
        raise DistilkitError(
            f"{what} has {count:,} NaN or infinite weights (first in {first}); it is not saved: {ADVICE}"
        )
