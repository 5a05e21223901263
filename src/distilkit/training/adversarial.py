"""Adversarial training on word embeddings: FGM (Miyato et al. 2017) and PGD (Madry et al. 2018).

FGM: after the normal backward pass, perturb the word-embedding matrix along its gradient,
    r = ε · g / ‖g‖₂,
run forward/backward again on the perturbed embeddings (gradients add up), then restore the embeddings.
PGD: K small steps of size α along the gradient, each projected back into the ε-ball around the clean
embeddings; only the last step's gradients are added to the clean ones.

A mixin over any Trainer (the plain one or the Distiller): `with_adversarial(Trainer)`.
"""

from __future__ import annotations

import torch

from distilkit.errors import DistilkitError


class AdversarialMixin:
    adversarial: str | None = "fgm"  # None: plain training steps (DistillationTrainer sets it from its arguments)
    epsilon: float = 1.0
    pgd_steps: int = 3
    pgd_alpha: float = 0.3

    def _embedding(self, model) -> torch.nn.Parameter:
        weight = model.get_input_embeddings().weight
        if not weight.requires_grad:
            raise DistilkitError(
                "--adversarial perturbs the word embeddings along their gradient, but they are frozen "
                "(--freeze-embeddings or a PEFT method); train them or drop --adversarial"
            )
        return weight

    def training_step(self, model, inputs, num_items_in_batch=None):
        if not self.adversarial:
            return super().training_step(model, inputs, num_items_in_batch)
        loss = super().training_step(model, inputs, num_items_in_batch)  # clean forward + backward
        weight = self._embedding(model)
        if weight.grad is None:
            return loss
        clean = weight.data.clone()
        if self.adversarial == "fgm":
            norm = weight.grad.norm()
            if norm > 0 and torch.isfinite(norm):
                weight.data.add_(self.epsilon * weight.grad / norm)
                super().training_step(model, inputs, num_items_in_batch)  # adversarial gradients add up
            weight.data.copy_(clean)
            return loss
        # PGD: keep the clean gradients aside while the inner steps probe the loss surface
        saved = {p: p.grad.clone() for p in model.parameters() if p.grad is not None}
        for step in range(self.pgd_steps):
            norm = weight.grad.norm()
            if not (norm > 0 and torch.isfinite(norm)):
                break
            weight.data.add_(self.pgd_alpha * weight.grad / norm)
            delta = weight.data - clean
            if delta.norm() > self.epsilon:  # project back into the ε-ball
                weight.data.copy_(clean + self.epsilon * delta / delta.norm())
            if step < self.pgd_steps - 1:
                model.zero_grad(set_to_none=False)  # the next direction is the gradient at the perturbed point
                super().training_step(model, inputs, num_items_in_batch)
        for p in model.parameters():
            if p in saved:
                p.grad.copy_(saved[p])
            elif p.grad is not None:
                p.grad.zero_()
        super().training_step(model, inputs, num_items_in_batch)  # final adversarial step adds its gradients
        weight.data.copy_(clean)
        return loss


def with_adversarial(trainer_class, method: str | None, epsilon: float, steps: int, alpha: float):
    """The trainer class itself, or a subclass that adds FGM/PGD."""
    if not method:
        return trainer_class
    if epsilon <= 0 or steps < 1 or alpha <= 0:
        raise DistilkitError("--adversarial-epsilon, --pgd-alpha and --pgd-steps must be positive")
    attrs = {"adversarial": method, "epsilon": epsilon, "pgd_steps": steps, "pgd_alpha": alpha}
    return type(f"Adversarial{trainer_class.__name__}", (AdversarialMixin, trainer_class), attrs)
