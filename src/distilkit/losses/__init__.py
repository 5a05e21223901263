"""Distillation losses: the registry (what each loss reads, `register_loss`) and the built-in formulas.

`from distilkit.losses import register_loss, LossInputs` is all a user's own loss needs (README: "Your own
loss"). The package sits below training and distillation: fine-tuning's Learning-without-Forgetting uses the
same KD formula as the distiller.
"""

from distilkit.losses.builtin import (  # noqa: F401  (importing builtin registers the built-in losses)
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
from distilkit.losses.registry import (  # noqa: F401
    LOSSES,
    READABLE,
    Loss,
    LossInputs,
    build_loss,
    import_plugins,
    reads_of,
    register_loss,
)
