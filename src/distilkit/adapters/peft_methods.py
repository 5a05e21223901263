"""LoRA, prefix tuning, prompt tuning and IA3 through the `peft` library.

The task head (classifier) is trained and saved with the adapter (peft's `modules_to_save`), since heads
start random. Target modules default to peft's choice for the architecture (BERT: query and value for
LoRA), or to `models.families`' where peft has none (DistilBERT, ModernBERT, ALBERT, MPNet);
names the user gives are checked against the model's Linear layers.
"""

from __future__ import annotations

import inspect

import torch
from transformers import PreTrainedModel

from distilkit.adapters.registry import AdapterMethod, register_method
from distilkit.errors import DistilkitError
from distilkit.models.families import family


def linear_names(model) -> list[str]:
    """Short names of the Linear layers (what peft's target_modules match), sorted."""
    return sorted({name.split(".")[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)})


def default_targets(model) -> list[str] | None:
    """None lets peft choose for the architecture; families peft does not know get distilkit's choice."""
    targets = family(model).lora_targets
    return list(targets) if targets else None


def check_targets(model, targets: list[str] | None) -> None:
    if not targets:
        return
    full = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    for target in targets:
        if not any(name == target or name.endswith("." + target) for name in full):
            raise DistilkitError(
                f"--target-modules: no Linear module named {target!r} in this model; "
                f"its Linear modules are: {', '.join(linear_names(model))}"
            )


def _task_type(task: str):
    from peft import TaskType

    return TaskType.TOKEN_CLS if task == "token-classification" else TaskType.SEQ_CLS


def _config(method: str, options, task: str, model):
    import peft

    common = dict(task_type=_task_type(task))
    if method == "lora":
        check_targets(model, options.target_modules)
        return peft.LoraConfig(
            r=options.lora_r,
            lora_alpha=options.lora_alpha,
            lora_dropout=options.lora_dropout,
            target_modules=options.target_modules or default_targets(model),
            **common,
        )
    if method == "ia3":
        check_targets(model, options.target_modules)
        targets = options.target_modules
        feedforward = [t for t in targets if t in ("dense", "output.dense", "lin2", "fc2")] if targets else None
        return peft.IA3Config(target_modules=targets, feedforward_modules=feedforward, **common)
    if method == "prefix":
        return peft.PrefixTuningConfig(num_virtual_tokens=options.virtual_tokens, **common)
    return peft.PromptTuningConfig(num_virtual_tokens=options.virtual_tokens, **common)


def accept_past_key_values(model) -> None:
    """Let peft's prefix tuning find `past_key_values` in encoders that renamed it to `cache`.

    transformers 5.24 renamed the encoders' `past_key_values` argument to `cache` (the old name stays a
    deprecated keyword until 5.40). peft (0.21.2) still looks for `past_key_values` in the backbone's forward
    *signature* before it passes the prefix as past key values, and refuses the model when it is absent. This
    gives the backbone (the model's one `PreTrainedModel` child, e.g. `model.bert`) an instance-level
    forward that takes `past_key_values` and hands it on as `cache`. A no-op on transformers < 5.24, where the
    signature still has `past_key_values`, and on models without a cache argument (DistilBERT), which peft then
    refuses with its own message.
    """
    for module in [model, *(m for _, m in model.named_children() if isinstance(m, PreTrainedModel))]:
        params = inspect.signature(module.forward).parameters
        if "past_key_values" in params or "cache" not in params:
            continue
        original = module.forward

        # Not functools.wraps: inspect.signature would follow __wrapped__ back to the signature peft rejects.
        def forward(*args, past_key_values=None, _original=original, **kwargs):
            if past_key_values is not None:
                kwargs["cache"] = past_key_values
            return _original(*args, **kwargs)

        module.forward = forward


def _make(method: str) -> AdapterMethod:
    def apply(model, options, task):
        from peft import get_peft_model

        if method == "prefix":
            accept_past_key_values(model)
        if options.lora_r <= 0 or options.virtual_tokens <= 0:
            raise DistilkitError("--lora-r and --virtual-tokens must be positive")
        try:
            return get_peft_model(model, _config(method, options, task, model))
        except ValueError as err:
            raise DistilkitError(f"--peft {method}: {str(err).splitlines()[0]}") from None

    def save(model, folder):
        model.save_pretrained(str(folder))

    def load(base, folder):
        from peft import PeftModel

        if method == "prefix":
            accept_past_key_values(base)
        return PeftModel.from_pretrained(base, str(folder))

    def merge(model):
        return model.merge_and_unload()

    return AdapterMethod(apply, save, load, merge if method == "lora" else None)


for _name in ("lora", "prefix", "prompt", "ia3"):
    register_method(_name, _make(_name))
