"""Bottleneck adapters: Houlsby et al. 2019 (after the attention and the feed-forward output projections)
and Pfeiffer et al. 2020 (after the feed-forward output only).

    h ← h + W_up · ReLU(W_down · h),   W_down: d → m, W_up: m → d (zero-initialised, so training starts from
                                        the unchanged model)

Each chosen output Linear of every transformer layer is wrapped so the adapter acts on its output, before
the residual connection and layer norm. Trained: the adapters, the layer norms and the task head. Adapters
are non-linear, so they cannot be merged into the base weights.
"""

from __future__ import annotations

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from distilkit.adapters.registry import AdapterMethod, register_method
from distilkit.errors import DistilkitError

FILE = "adapter.safetensors"
QKV = ("query", "key", "value", "q_lin", "k_lin", "v_lin", "q_proj", "k_proj", "v_proj")
HEAD_NAMES = ("classifier", "score")


class AdaptedLinear(nn.Module):
    """A Linear followed by a residual bottleneck adapter."""

    def __init__(self, linear: nn.Linear, size: int):
        super().__init__()
        self.linear = linear
        self.down = nn.Linear(linear.out_features, size)
        self.up = nn.Linear(size, linear.out_features)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x):
        h = self.linear(x)
        return h + self.up(torch.relu(self.down(h)))


def _targets(model, placement: str) -> list[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, Linear) for the output projections of every layer."""
    from distilkit.models import encoder_layers

    hidden = model.config.hidden_size
    found = []
    for layer in encoder_layers(model, "--peft adapter"):
        for name, module in layer.named_modules():
            if not isinstance(module, nn.Linear) or module.out_features != hidden or name.split(".")[-1] in QKV:
                continue
            is_ffn = module.in_features != hidden
            if is_ffn or placement == "houlsby":
                parent = layer.get_submodule(name.rsplit(".", 1)[0]) if "." in name else layer
                found.append((parent, name.split(".")[-1], module))
    if not found:
        raise DistilkitError(f"--peft adapter: found no output projections in {type(model).__name__}'s layers")
    return found


def insert(model, size: int, placement: str):
    for parent, attribute, linear in _targets(model, placement):
        setattr(parent, attribute, AdaptedLinear(linear, size))
    return model


def _is_trained(name: str) -> bool:
    return (
        ".down." in name
        or ".up." in name
        or "LayerNorm" in name
        or "layer_norm" in name
        or name.split(".")[0] in HEAD_NAMES
    )


def apply(model, options, task):
    if options.adapter_size <= 0:
        raise DistilkitError(f"--adapter-size {options.adapter_size}: must be positive")
    insert(model, options.adapter_size, options.adapter_placement)
    model.config.distilkit_adapter = {"size": options.adapter_size, "placement": options.adapter_placement}
    for name, param in model.named_parameters():
        param.requires_grad_(_is_trained(name))
    return model


def save(model, folder):
    tensors = {n: p.detach().contiguous() for n, p in model.named_parameters() if _is_trained(n)}
    tensors["__size__"] = torch.tensor(model.config.distilkit_adapter["size"])
    tensors["__houlsby__"] = torch.tensor(int(model.config.distilkit_adapter["placement"] == "houlsby"))
    save_file(tensors, str(folder / FILE))


def load(base, folder):
    tensors = load_file(str(folder / FILE))
    size, houlsby = int(tensors.pop("__size__")), bool(tensors.pop("__houlsby__"))
    insert(base, size, "houlsby" if houlsby else "pfeiffer")
    result = base.load_state_dict(tensors, strict=False)
    if result.unexpected_keys:
        raise DistilkitError(f"{folder}: adapter weights do not fit the base model ({result.unexpected_keys[0]} ...)")
    return base


register_method("adapter", AdapterMethod(apply, save, load, merge=None))
