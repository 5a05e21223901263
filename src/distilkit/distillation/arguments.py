"""`DistillationArguments`: Hugging Face `TrainingArguments` plus distilkit's distillation options.

The distillation fields have the names, defaults and valid ranges of `distilkit distill`'s options (the CLI builds
its trainer from these), so `--temperature 0` and `DistillationArguments(temperature=0)` are refused alike. They
parse from the command line with `HfArgumentParser` like any TrainingArguments field (a mapping such as `losses`
may be given as JSON or YAML text there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union, get_args

import yaml
from transformers import TrainingArguments

from distilkit.config import MethodName
from distilkit.errors import DistilkitError
from distilkit.option_rules import AT_LEAST_1, FRACTION, NON_NEGATIVE, POSITIVE, Rule, check_options


def _option(default: Any, help: str, rule: Rule | None = None) -> Any:
    """A field with its help line (shown by HfArgumentParser) and, for numbers, its valid range."""
    metadata: dict[str, Any] = {"help": help}
    if rule is not None:
        metadata["rule"] = rule
    return field(default=default, metadata=metadata)


@dataclass
class DistillationArguments(TrainingArguments):  # type: ignore[misc]  # transformers is not followed by mypy
    """TrainingArguments for `DistillationTrainer`: every Trainer option, plus the distillation method and its
    losses. `None` means "the method's default" (see `distilkit distill --help` for each option)."""

    method: MethodName = _option("kd", "Distillation method: kd, tinybert (two stages), distilbert, minilm.")
    losses: Optional[Union[dict[str, float], str]] = _option(
        None, "Loss weights of the last stage, replacing the method's, e.g. {kd: 0.5, ce: 0.5, hidden_mse: 1}."
    )
    alpha: Optional[float] = _option(None, "Weight of the label loss (CE); KD gets 1 - alpha.", FRACTION)
    temperature: Optional[float] = _option(None, "Softmax temperature of logit KD (scaled by T²).", POSITIVE)
    layer_map: Optional[str] = _option(
        None, "auto, copied, uniform, last, or student:teacher hidden-state pairs like 0:0,1:2,2:4."
    )
    relation_heads: Optional[int] = _option(None, "MiniLM relation heads.", AT_LEAST_1)
    attention_probabilities: Optional[bool] = _option(
        None, "Attention loss on softmax probabilities instead of pre-softmax scores."
    )
    normalize_losses: Optional[bool] = _option(None, "MSE layer losses relative to the teacher's mean square.")
    intermediate_epochs: Optional[float] = _option(
        None, "Epochs of a two-stage method's intermediate stage (default: num_train_epochs).", POSITIVE
    )
    intermediate_lr: Optional[float] = _option(
        None, "Learning rate of the intermediate stage (default: learning_rate).", POSITIVE
    )
    teacher_weights: Optional[Union[list[float], str]] = _option(
        None, "Weights of several teachers' soft targets (default: equal), e.g. [2, 1] or 2,1."
    )
    cache: bool = _option(True, "Cache the teacher's outputs on disk (computed once, reused across epochs and runs).")
    cache_dir: Optional[str] = _option(None, "Cache folder (default: $DISTILKIT_CACHE or ~/.cache/distilkit/teacher).")
    cache_max_gb: float = _option(4.0, "Cache intermediate teacher outputs only under this many GB.", NON_NEGATIVE)
    adversarial: Optional[str] = _option(None, "Adversarial training on the word embeddings: fgm or pgd.")
    adversarial_epsilon: float = _option(1.0, "Size of the FGM perturbation / radius of the PGD ball.", POSITIVE)
    pgd_steps: int = _option(3, "PGD inner steps.", AT_LEAST_1)
    pgd_alpha: float = _option(0.3, "PGD step size.", POSITIVE)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self)  # the same ranges and messages as the CLI's options
        methods = get_args(MethodName)
        if self.method not in methods:
            raise DistilkitError(f"--method {self.method!r}: choose one of {', '.join(methods)}")
        if isinstance(self.losses, str):
            self.losses = _mapping(self.losses, "losses")
        if isinstance(self.teacher_weights, str):
            self.teacher_weights = [float(x) for x in self.teacher_weights.split(",") if x.strip()]
        if self.adversarial not in (None, "fgm", "pgd"):
            raise DistilkitError(f"--adversarial {self.adversarial!r}: use fgm or pgd")


def _mapping(text: str, name: str) -> dict[str, Any]:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise DistilkitError(f"--{name} {text!r}: not a mapping ({err.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise DistilkitError(f"--{name} {text!r}: give a mapping such as {{kd: 0.5, ce: 0.5}}")
    return value
