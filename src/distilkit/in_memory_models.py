"""Loaded models as command inputs: `distilkit.evaluate(model=(model, tokenizer), ...)` from a notebook.

The commands read models from folders (that is how they load ONNX, adapters, run folders and hub ids alike), so a
model given as an object is saved once into a temporary folder, the command runs on that folder, and the folder is
removed afterwards. One code path: the object is evaluated, served or distilled exactly as its saved copy would be.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distilkit.errors import DistilkitError

# The options that name a model (or, for bench and run, a list of models).
MODEL_OPTIONS = ("model", "teacher", "models")


def is_loaded(value: Any) -> bool:
    """A model object rather than a name: a Hugging Face model, a (model, tokenizer) pair, or a pipeline."""
    if isinstance(value, tuple) and len(value) == 2 and hasattr(value[0], "save_pretrained"):
        return True
    return hasattr(value, "save_pretrained") or _is_pipeline(value)


def _is_pipeline(value: Any) -> bool:
    """A transformers pipeline (it has a save_pretrained of its own, so it is told apart by its parts)."""
    return hasattr(getattr(value, "model", None), "save_pretrained") and hasattr(value, "tokenizer")


def _model_and_tokenizer(option: str, value: Any) -> tuple[Any, Any]:
    if isinstance(value, tuple):
        return value
    if _is_pipeline(value):
        return value.model, value.tokenizer
    return value, _tokenizer_beside(option, value)


def _tokenizer_beside(option: str, model: Any) -> Any:
    """A bare model: its tokenizer is the one in the folder it was loaded from, if that folder has one."""
    from transformers import AutoTokenizer

    source = str(getattr(model, "name_or_path", "") or "")
    if source and Path(source).is_dir():
        try:
            return AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError):
            pass
    raise DistilkitError(
        f"{option}={type(model).__name__}: the model alone has no tokenizer (loaded from {source or 'nowhere'!r}); "
        f"pass {option}=(model, tokenizer), a transformers pipeline, or the model's folder"
    )


def describe_models(value: Any) -> Any:
    """How config.yaml records loaded models: by class, since their temporary copies are gone after the call."""
    if isinstance(value, list):
        return [describe_models(item) for item in value]
    if not is_loaded(value):
        return value
    model = value[0] if isinstance(value, tuple) else value.model if _is_pipeline(value) else value
    return f"in-memory {type(model).__name__} (saved for this call only)"


def _save(option: str, value: Any, into: Path) -> str:
    model, tokenizer = _model_and_tokenizer(option, value)
    if not hasattr(model, "save_pretrained") or not hasattr(tokenizer, "save_pretrained"):
        raise DistilkitError(
            f"{option}=({type(model).__name__}, {type(tokenizer).__name__}): expected a Hugging Face model and its "
            "tokenizer"
        )
    folder = Path(tempfile.mkdtemp(prefix=f"{option}-", dir=into))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@contextlib.contextmanager
def models_on_disk(options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """`options` with every loaded model replaced by the path of a temporary copy, removed on exit."""
    loaded = {
        name
        for name in MODEL_OPTIONS
        if is_loaded(options.get(name))
        or (isinstance(options.get(name), list) and any(is_loaded(item) for item in options[name]))
    }
    if not loaded:
        yield options
        return
    scratch = Path(tempfile.mkdtemp(prefix="distilkit-models-"))
    try:
        saved = dict(options)
        for name in loaded:
            value = options[name]
            if isinstance(value, list):
                paths = [_save(name, item, scratch) if is_loaded(item) else item for item in value]
                saved[name] = ",".join(paths) if name == "teacher" else paths  # --teacher a,b: multi-teacher
            else:
                saved[name] = _save(name, value, scratch)
        yield saved
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
