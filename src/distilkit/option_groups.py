"""How each command's options are grouped: one table, read by `--help` (distilkit.cli) and by the CLI reference
(scripts/cli_reference.py writes docs/reference/cli.md), so the two always show the same groups.

`GROUPS[command]` maps a group's title to its options (dataclass field names), in the order they are shown. The
first group of each command, `MAIN`, holds the few options that matter most. An option is shown in the first group
that names it, so the shared groups below may name options that `MAIN` already took. An option that no group names
is still shown, in `OTHER` at the end; `tests/test_cli.py` fails on such an option, so that a new option gets its
group here. Only strings live here: `--help` must not import torch, and neither must this table.
"""

from __future__ import annotations

from collections.abc import Iterable

MAIN = "main options"
OTHER = "other options"

Groups = dict[str, tuple[str, ...]]

# DataOptions (config.py), shared by every command that reads a dataset
_DATA: Groups = {
    "data": (
        "data",
        "data_config",
        "data_revision",
        "train_file",
        "dev_file",
        "test_file",
        "split",
        "format",
        "max_length",
        "max_train_samples",
        "max_eval_samples",
    ),
    "columns and task": (
        "text_column",
        "text_pair_column",
        "label_column",
        "group_column",
        "tokens_column",
        "tags_column",
        "task",
        "regression",
    ),
}

# TrainOptions and PeftOptions (config.py): the commands that train
_TRAINING: Groups = {
    "training": (
        "epochs",
        "lr",
        "batch_size",
        "eval_batch_size",
        "grad_accum",
        "warmup",
        "weight_decay",
        "max_grad_norm",
        "early_stopping",
        "metric",
        "precision",
        "seed",
        "threads",
    ),
    "model": ("dropout", "freeze_embeddings", "freeze_layers"),
    "seeds and folds": ("seeds", "folds", "fold", "data_seed"),
    "adversarial training": ("adversarial", "adversarial_epsilon", "pgd_steps", "pgd_alpha"),
    "PEFT": (
        "peft",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "target_modules",
        "virtual_tokens",
        "adapter_size",
        "adapter_placement",
    ),
}
_RUN_FOLDER: Groups = {
    "output and run folder": ("output", "overwrite", "resume", "save_steps", "logging_steps", "report_to"),
}
_OUTPUT: Groups = {"output": ("output", "overwrite")}

GROUPS: dict[str, Groups] = {
    "finetune": {
        MAIN: ("model", "data", "output"),
        **_DATA,
        **_TRAINING,
        "continual learning": ("continue_from", "preserve", "preserve_weight", "replay", "keep_data_sample"),
        **_RUN_FOLDER,
    },
    "distill": {
        MAIN: ("teacher", "data", "student", "method", "output"),
        "distillation": (
            "teacher_weights",
            "losses",
            "plugins",
            "alpha",
            "temperature",
            "layer_map",
            "relation_heads",
            "attention_probabilities",
            "normalize_losses",
            "separate_tokenization",
            "force",
        ),
        "embedding models": ("pooling",),
        "two stages": ("intermediate_epochs", "intermediate_lr", "intermediate_from"),
        "transfer set and augmentation": (
            "unlabeled",
            "unlabeled_ratio",
            "general",
            "augment",
            "augment_p",
            "augment_model",
        ),
        "teacher cache": ("cache", "cache_dir", "cache_max_gb"),
        **_DATA,
        **_TRAINING,
        **_RUN_FOLDER,
    },
    "augment": {
        MAIN: ("data", "model", "output"),
        "augmentation": ("copies", "p", "top_k", "seed"),
        "data": ("format", "text_column", "text_pair_column", "tokens_column"),
        **_OUTPUT,
    },
    "evaluate": {
        MAIN: ("model", "data", "eval_split", "output"),
        "evaluation": ("compare", "batch_size", "json"),
        **_DATA,
        **_OUTPUT,
    },
    "search": {
        MAIN: ("command", "base", "space", "trials", "output"),
        "search": ("options", "metric", "seed"),
        **_OUTPUT,
    },
    "merge": {MAIN: ("model", "output"), **_OUTPUT},
    "predict": {
        MAIN: ("model", "texts", "file", "output"),
        "input": ("text_column", "text_pair_column", "max_length", "batch_size"),
        "output": ("top_k", "overwrite"),
    },
    "prune": {
        MAIN: ("model", "data", "heads", "ffn", "output"),
        "pruning": ("sparsity", "budget", "importance_split", "importance_samples", "batch_size", "eval_split", "seed"),
        "recovery": ("recover", "recover_epochs", "recover_lr"),
        **_DATA,
        **_OUTPUT,
    },
    "export": {
        MAIN: ("model", "output"),
        "export": ("opset", "optimize", "patches"),
        "parity check": ("parity_split", "parity_samples", "tolerance"),
        **_DATA,
        **_OUTPUT,
    },
    "quantize": {
        MAIN: ("model", "method", "output"),
        "int8": ("calibration_samples", "calibration_method", "per_channel"),
        "accuracy check": ("eval_split", "batch_size"),
        **_DATA,
        **_OUTPUT,
    },
    "bench": {
        MAIN: ("models", "backend", "output"),
        "inputs": ("seq_len", "data", "max_length", "batch_size"),
        "measurement": ("rounds", "settle_ms", "warmup", "threads", "memory"),
        **_OUTPUT,
    },
    "report": {MAIN: ("runs", "output"), "recommendation": ("min_retention", "retention_rule")},
    "run": {MAIN: ("recipe", "output", "overwrite")},
    "serve": {
        MAIN: ("model", "backend", "host", "port", "api_key"),
        "predictions": ("max_length", "top_k"),
        "micro-batching": ("max_batch", "max_wait_ms", "max_queue"),
        "request limits": ("max_texts", "max_chars", "max_body", "body_timeout"),
        "server": ("graceful_timeout", "log_level"),
    },
    "push": {MAIN: ("model", "repo_id"), "Hub": ("private", "revision", "token", "message", "dry_run")},
}


def grouped(command: str, options: Iterable[str]) -> list[tuple[str, list[str]]]:
    """(group title, its options) for `command`'s `options`, in the order --help shows them: each option in the
    first group that names it, the options no group names in OTHER at the end, groups left empty dropped."""
    remaining = list(options)
    out: list[tuple[str, list[str]]] = []
    for title, names in GROUPS.get(command, {}).items():
        here = [name for name in names if name in remaining]
        remaining = [name for name in remaining if name not in here]
        if here:
            out.append((title, here))
    if remaining:
        out.append((OTHER, remaining))
    return out
