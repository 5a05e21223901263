"""distilkit's distillation losses, a public and stable module: the registry and the built-in formulas.

Each formula is a plain function of tensors (its docstring gives the formula and the paper), usable in a loop of
one's own (examples/own_loop.py); each is also registered by name with what it reads, and `register_loss` adds
one's own (docs/guides/distillation.md, "Your own loss"), which `DistillationTrainer` and `distilkit distill
--losses` then use:

    from distilkit.losses import LossInputs, register_loss

    @register_loss("logit_l1", reads={"logits"})
    def logit_l1(batch: LossInputs):
        return (batch.student_logits - batch.teacher_logits[0]).abs().mean()

The package sits below training and distillation: fine-tuning's Learning-without-Forgetting uses the same KD
formula as the distiller.
"""

from distilkit.losses.builtin import (  # importing builtin registers the built-in losses
    attention_mse_loss,
    embedding_mse_loss,
    hidden_cosine_loss,
    hidden_mse_loss,
    kd_loss,
    kd_mse_loss,
    kd_soft_targets_loss,
    masked_mean,
    minilm_relations_loss,
    soft_targets,
)
from distilkit.losses.registry import (
    LOSSES,
    READABLE,
    Loss,
    LossInputs,
    build_loss,
    import_plugins,
    loss_value,
    reads_of,
    register_loss,
)

__all__ = [
    "LOSSES",
    "READABLE",
    "Loss",
    "LossInputs",
    "attention_mse_loss",
    "build_loss",
    "embedding_mse_loss",
    "hidden_cosine_loss",
    "hidden_mse_loss",
    "import_plugins",
    "kd_loss",
    "kd_mse_loss",
    "kd_soft_targets_loss",
    "loss_value",
    "masked_mean",
    "minilm_relations_loss",
    "reads_of",
    "register_loss",
    "soft_targets",
]
