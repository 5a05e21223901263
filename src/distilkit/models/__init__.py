"""Finding and loading models: aliases, run folders, model folders and hub ids; freezing and dropout
(models/loading.py); checks of a model folder (validate.py), encoder families (families.py), pruned shapes
(pruned.py), split model aliases (aliases.py).
"""

from distilkit.models.aliases import SPLIT_ALIASES
from distilkit.models.loading import (
    ALIASES,
    TOKENIZER_FILES,
    check_hub_reachable,
    check_max_length,
    check_weights_readable,
    encoder_layers,
    freeze,
    load_model,
    load_tokenizer,
    loading,
    looks_local,
    max_positions,
    model_task,
    native_bf16,
    read_config_dict,
    resolve_model,
    set_dropout,
)

__all__ = [
    "SPLIT_ALIASES",
    "ALIASES",
    "TOKENIZER_FILES",
    "check_hub_reachable",
    "check_max_length",
    "check_weights_readable",
    "encoder_layers",
    "freeze",
    "load_model",
    "load_tokenizer",
    "loading",
    "looks_local",
    "max_positions",
    "model_task",
    "native_bf16",
    "read_config_dict",
    "resolve_model",
    "set_dropout",
]
