"""BitFit (Ben Zaken, Goldberg & Ravfogel 2022): train only the bias terms (and the task head).

Saved as `bitfit.safetensors` holding the trained tensors only; merging is just loading them into the base.
"""

from __future__ import annotations

from safetensors.torch import load_file, save_file

from distilkit.adapters.registry import AdapterMethod, register_method
from distilkit.errors import DistilkitError

FILE = "bitfit.safetensors"
HEAD_NAMES = ("classifier", "score", "qa_outputs")


def _is_trained(name: str) -> bool:
    return name.endswith(".bias") or name.split(".")[0] in HEAD_NAMES


def apply(model, options, task):
    for name, param in model.named_parameters():
        param.requires_grad_(_is_trained(name))
    return model


def save(model, folder):
    tensors = {n: p.detach().contiguous() for n, p in model.named_parameters() if _is_trained(n)}
    save_file(tensors, str(folder / FILE))


def load(base, folder):
    tensors = load_file(str(folder / FILE))
    result = base.load_state_dict(tensors, strict=False)
    if result.unexpected_keys:
        raise DistilkitError(f"{folder}: BitFit weights do not fit the base model ({result.unexpected_keys[0]} ...)")
    return base


register_method("bitfit", AdapterMethod(apply, save, load, merge=lambda model: model))
