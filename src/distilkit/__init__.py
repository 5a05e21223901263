"""distilkit: turn a large BERT-family model into a small, fast one you can ship.

    import distilkit
    teacher = distilkit.finetune(model="minilm-l6", data="train.csv", output="runs/teacher")   # one call a command
    from distilkit import DistillationTrainer, DistillationArguments   # distillation in your own Trainer code

The public names are imported when first used: `import distilkit` itself loads neither torch nor transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from distilkit.noise import quiet_library_logs

__version__ = "0.1.0"

_COMMANDS = ["finetune", "distill", "augment", "evaluate", "search", "merge", "predict", "prune", "export"]
_COMMANDS += ["quantize", "bench", "report", "run", "serve", "push"]
# public name -> the module that defines it
_PUBLIC = {
    "DistilkitError": "distilkit.errors",
    "DistillationArguments": "distilkit.distillation.arguments",
    "DistillationTrainer": "distilkit.distillation.trainer",
    "RunResult": "distilkit.api",
    "SearchResult": "distilkit.api",
    "build_student": "distilkit.api",
    "capture_attention": "distilkit.api",
    "recording": "distilkit.api",
    **{name: "distilkit.api" for name in _COMMANDS},
}
__all__ = ["__version__", *_PUBLIC]

quiet_library_logs()  # before anything imports transformers (and with it torchao)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # found once; a later lookup does not come back here
        return value
    raise AttributeError(f"module 'distilkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # what type checkers and IDEs see (the imports run lazily above)
    from distilkit.api import RunResult as RunResult
    from distilkit.api import SearchResult as SearchResult
    from distilkit.api import augment as augment
    from distilkit.api import bench as bench
    from distilkit.api import build_student as build_student
    from distilkit.api import capture_attention as capture_attention
    from distilkit.api import distill as distill
    from distilkit.api import evaluate as evaluate
    from distilkit.api import export as export
    from distilkit.api import finetune as finetune
    from distilkit.api import merge as merge
    from distilkit.api import predict as predict
    from distilkit.api import prune as prune
    from distilkit.api import push as push
    from distilkit.api import quantize as quantize
    from distilkit.api import recording as recording
    from distilkit.api import report as report
    from distilkit.api import run as run
    from distilkit.api import search as search
    from distilkit.api import serve as serve
    from distilkit.distillation.arguments import DistillationArguments as DistillationArguments
    from distilkit.distillation.trainer import DistillationTrainer as DistillationTrainer
    from distilkit.errors import DistilkitError as DistilkitError
