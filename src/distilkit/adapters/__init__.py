"""Parameter-efficient training methods behind one small interface, as HF PEFT organises its methods: the
registry and the adapter folder's format in registry.py; LoRA, prefix, prompt and IA3 (through `peft`) in
peft_methods.py; BitFit and bottleneck adapters, not in `peft`, in bitfit.py and bottleneck.py."""

from distilkit.adapters.registry import (
    META_FILE,
    METHODS,
    AdapterMethod,
    apply,
    get_method,
    load_adapter,
    read_meta,
    register_method,
    save_adapter,
)

__all__ = [
    "META_FILE",
    "METHODS",
    "AdapterMethod",
    "apply",
    "get_method",
    "load_adapter",
    "read_meta",
    "register_method",
    "save_adapter",
]
