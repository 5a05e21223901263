"""Checks of a model folder for what distilkit needs, each refusal one line naming the file and the value.

A damaged or foreign `config.json` otherwise fails deep inside a forward pass (`vocab_size: 0` is an IndexError in
the embedding lookup, `num_hidden_layers: 0` loads a model that ignores its weights), and NaN weights give
predictions that are not JSON. The length a command reads defaults to what the model can take (`fit_max_length`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from distilkit.errors import DistilkitError

DEFAULT_MAX_LENGTH = 128
# Size fields that must be integers ≥ 1 where a config has them (DistilBERT spells them dim, n_layers, ...).
POSITIVE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "dim",
    "num_hidden_layers",
    "n_layers",
    "num_attention_heads",
    "n_heads",
    "intermediate_size",
    "hidden_dim",
    "max_position_embeddings",
)


def check_config_values(config: dict, config_file: str) -> None:
    """Refuse sizes no model can have (0, negative, not an integer): the file, the field, the value, the fix."""
    for field in POSITIVE_FIELDS:
        value = config.get(field)
        if field in config and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DistilkitError(
                f"{config_file}: {field} is {value!r}, but it must be an integer ≥ 1; this config.json is damaged "
                "or not a model's: save the model again with save_pretrained"
            )


def check_labels(config: dict, config_file: str) -> None:
    """A model with a task head needs a label map of at least one label (one output for regression)."""
    if config.get("problem_type") == "regression":
        return
    labels = config.get("id2label")
    if isinstance(labels, dict) and labels:
        return
    count = config.get("num_labels", 0 if labels is not None else 2)  # transformers' default is 2 labels
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise DistilkitError(
            f"{config_file}: num_labels is {count!r} (id2label is empty), so the model's head predicts nothing; "
            "this is not a fine-tuned model: fine-tune it with distilkit finetune, or fix its id2label"
        )


def fit_max_length(
    max_length: int | None, limit: int | None, path: str, quiet: bool = False, option: str = "--max-length"
) -> int:
    """The tokens per text a command reads: `max_length` when given (refused beyond the model's `limit`), else
    the smaller of 128 and the model's positions, said on stderr when that is below 128."""
    if max_length is not None:
        if limit is not None and max_length > limit:
            raise DistilkitError(
                f"{option} {max_length}: {path} reads at most {limit} tokens "
                f"(max_position_embeddings in its config.json); use {option} {limit} or less"
            )
        return max_length
    if limit is None or limit >= DEFAULT_MAX_LENGTH:
        return DEFAULT_MAX_LENGTH
    if not quiet:  # on stderr: predict's stdout is JSONL
        print(f"max length: {limit} tokens ({path} reads no more; --max-length sets a smaller one)", file=sys.stderr)
    return limit


def nonfinite_parameters(model) -> tuple[int, str | None]:
    """How many parameters of a torch model are NaN or infinite, and the name of the first tensor holding one."""
    import torch

    count, first = 0, None
    for name, p in model.named_parameters():
        if type(p.data) is not torch.Tensor or not p.dtype.is_floating_point:
            continue  # int8 tensor subclasses (torchao) hold integers and scales, and have no isfinite
        bad = p.numel() - int(torch.isfinite(p).sum())
        if bad:
            count += bad
            first = first or name
    return count, first


def check_finite_model(model, path: str) -> None:
    """Refuse a loaded model whose weights hold NaN or infinities: its outputs would be NaN."""
    count, first = nonfinite_parameters(model)
    if count:
        raise DistilkitError(
            f"{path}: {count:,} weights are NaN or infinite (first in {first}), so every prediction would be NaN; "
            "the model is broken: train or export it again"
        )


def pickle_refusal(path: str, err: BaseException) -> str:
    """The line for a pickled weights file that torch.load(weights_only=True) refused: it holds more than tensors."""
    files = sorted(Path(path).glob("*.bin")) if Path(path).is_dir() else []
    where = files[0] if files else path
    return (
        f"{where}: refused: a pickle holding more than tensors ({type(err).__name__}), and distilkit never runs "
        "code from model files; if you trust its source, load it yourself and save it as safetensors "
        "(model.save_pretrained(folder))"
    )
