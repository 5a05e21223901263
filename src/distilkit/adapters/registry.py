"""Parameter-efficient training methods behind one small interface, as HF PEFT organises its methods.

Each method registers an `AdapterMethod` with four operations: `apply` (make only its parameters trainable),
`save` (write the adapter alone, small), `load` (attach a saved adapter to a freshly loaded base model) and
`merge` (fold it into a plain model, where the math allows). LoRA, prefix tuning, prompt tuning and IA3 come
from the `peft` library; BitFit and bottleneck adapters are not in `peft` and are written here.

An adapter folder holds the method's files, the tokenizer and `distilkit_adapter.json`, which points to the
base model and keeps the task and label map, so `evaluate`, `predict` and `merge` can rebuild base + adapter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, get_args

from distilkit.config import PeftMethod
from distilkit.errors import DistilkitError

META_FILE = "distilkit_adapter.json"


@dataclass(frozen=True)
class AdapterMethod:
    apply: Callable  # (model, options, task) -> model
    save: Callable  # (model, folder) -> None
    load: Callable  # (base model, folder) -> model
    merge: Callable | None  # (model) -> plain PreTrainedModel, or None when the method cannot be merged


METHODS: dict[str, AdapterMethod] = {}


def register_method(name: str, method: AdapterMethod) -> None:
    if name not in get_args(PeftMethod):  # --peft could not choose it: add the name to PeftMethod too
        raise ValueError(f"PEFT method {name!r} is not in PeftMethod {get_args(PeftMethod)}")
    METHODS[name] = method


def get_method(name: str) -> AdapterMethod:
    from distilkit.adapters import bitfit, bottleneck, peft_methods  # noqa: F401  (they register themselves)

    if name not in METHODS:
        raise DistilkitError(f"unknown PEFT method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


def apply(model, options, task: str):
    return get_method(options.peft).apply(model, options, task)


def save_adapter(model, folder: Path, method: str, base: str, task: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    get_method(method).save(model, folder)
    config = model.config if hasattr(model, "config") else model.base_model.config
    meta = {
        "method": method,
        "base": base,
        "task": task,
        "id2label": {str(k): v for k, v in config.id2label.items()},
        "problem_type": getattr(config, "problem_type", None),
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def read_meta(folder: str | Path) -> dict | None:
    path = Path(folder) / META_FILE
    return json.loads(path.read_text()) if path.exists() else None


def load_adapter(base_model, folder: str | Path, method: str):
    return get_method(method).load(base_model, Path(folder))
