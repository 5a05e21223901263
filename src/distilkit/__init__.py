"""distilkit: turn a large BERT-family model into a small, fast one you can ship.

The public names are imported when first used (`import distilkit` itself loads neither torch nor transformers):

    from distilkit import DistillationTrainer, DistillationArguments   # distillation in your own Trainer code
    import distilkit; distilkit.distill(teacher="runs/teacher", data="train.csv", student="3")   # one call a command
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from distilkit.noise import quiet_library_logs

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "DistilkitError": "distilkit.errors",
    "DistillationArguments": "distilkit.distill.arguments",
    "DistillationTrainer": "distilkit.distill.trainer",
    "build_student": "distilkit.api",
}
__all__ = ["__version__", *_PUBLIC]

quiet_library_logs()  # before anything imports transformers (and with it torchao)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'distilkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # what type checkers and IDEs see (the imports run lazily above)
    from distilkit.api import build_student as build_student
    from distilkit.distill.arguments import DistillationArguments as DistillationArguments
    from distilkit.distill.trainer import DistillationTrainer as DistillationTrainer
    from distilkit.errors import DistilkitError as DistilkitError
