"""Hugging Face's option names as aliases of distilkit's: one table, read by the CLI, config files and the API.

People who know the Trainer write `--learning-rate`, `--num-train-epochs`, `--per-device-train-batch-size`,
`--validation-file`, `--output-dir`: the `TrainingArguments` fields and the spellings of the example scripts
(run_glue.py, run_classification.py, run_ner.py, TRL's). Each row of `ALIASES` names one such spelling, the
distilkit option it means and, where the two differ in more than the name, how its value becomes the option's
(`--warmup-ratio 0.1` is `--warmup 0.1`, `--fp16` is `--precision fp16`).

An alias applies to a command that has its target option; the rows marked `training` (TrainingArguments fields)
only to the commands that train (finetune, distill), so `--warmup-steps` never reaches bench's `--warmup`, nor
`--per-device-train-batch-size` evaluate's `--batch-size`. Aliases are resolved before anything else reads the
name, so a config, config.yaml and resume checks only ever hold distilkit's names. The same table feeds the
nearest-name suggestion for a misspelt option (`--per-device-train-batchsize`: did you mean --batch-size?).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from distilkit.config import TrainOptions
from distilkit.errors import DistilkitError
from distilkit.option_rules import option_name, parse_number

_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _flag(value: Any, name: str) -> bool:
    """A true/false value as the command line (a word), YAML or Python (a bool) gives it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _WORDS:
        return _WORDS[value.lower()]
    raise DistilkitError(f"{option_name(name)} {value!r}: must be true or false")


def _warmup_steps(value: Any, name: str) -> int:
    """--warmup-steps N: --warmup takes a whole number ≥ 1 as steps (0 = no warm-up)."""
    number = parse_number(value) if isinstance(value, str) else value
    whole = isinstance(number, int) or (isinstance(number, float) and number.is_integer())  # nan, inf: not whole
    if isinstance(number, bool) or not whole or number < 0:
        raise DistilkitError(f"{option_name(name)} {number!r}: must be an integer ≥ 0 (a number of steps)")
    return int(number)


def _warmup_ratio(value: Any, name: str) -> float:
    """--warmup-ratio R: --warmup takes a value below 1 as a fraction of all steps (1 or more would be steps)."""
    number = parse_number(value) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 <= number < 1:
        raise DistilkitError(
            f"{option_name(name)} {number!r}: must be a fraction in [0, 1) of all steps; --warmup-steps gives steps"
        )
    return float(number)


def _precision(kind: str) -> Callable[[Any, str], str]:
    """--fp16 / --bf16 (TrainingArguments' switches): --precision fp16|bf16, and false means plain fp32."""

    def convert(value: Any, name: str) -> str:
        return kind if _flag(value, name) else "fp32"

    return convert


def _resume(value: Any, name: str) -> bool:
    """--resume-from-checkpoint: distilkit resumes from the run folder's own last checkpoint, never another path."""
    if isinstance(value, bool) or (isinstance(value, str) and value.lower() in _WORDS):
        return _flag(value, name)
    raise DistilkitError(
        f"{option_name(name)} {value!r}: distilkit resumes an interrupted run from its own last checkpoint; pass "
        "--resume with the same --output"
    )


@dataclass(frozen=True)
class Alias:
    """One Hugging Face spelling (underscored) of a distilkit option.

    targets: the distilkit options it may mean, the first one the command has (model_name_or_path is finetune's
    --model and distill's --student). training: a TrainingArguments field, for the commands that train only.
    value: turns the alias's value into the option's, naming the alias in its errors. flag: may stand alone on
    the command line (`--fp16` = `--fp16 true`).
    """

    name: str
    targets: tuple[str, ...]
    training: bool = False
    value: Callable[[Any, str], Any] | None = None
    flag: bool = False


ALIASES: tuple[Alias, ...] = (
    # TrainingArguments (and EarlyStoppingCallback) fields that distilkit spells otherwise
    Alias("learning_rate", ("lr",), training=True),
    Alias("num_train_epochs", ("epochs",), training=True),
    Alias("per_device_train_batch_size", ("batch_size",), training=True),
    Alias("train_batch_size", ("batch_size",), training=True),
    Alias("per_device_eval_batch_size", ("eval_batch_size",), training=True),
    Alias("gradient_accumulation_steps", ("grad_accum",), training=True),
    Alias("warmup_steps", ("warmup",), training=True, value=_warmup_steps),
    Alias("warmup_ratio", ("warmup",), training=True, value=_warmup_ratio),
    Alias("metric_for_best_model", ("metric",), training=True),
    Alias("early_stopping_patience", ("early_stopping",), training=True),
    Alias("fp16", ("precision",), training=True, value=_precision("fp16"), flag=True),
    Alias("bf16", ("precision",), training=True, value=_precision("bf16"), flag=True),
    Alias("resume_from_checkpoint", ("resume",), training=True, value=_resume, flag=True),
    Alias("output_dir", ("output",)),
    Alias("overwrite_output_dir", ("overwrite",)),
    # TrainingArguments' Hub fields: the options of distilkit push
    Alias("hub_model_id", ("repo_id",)),
    Alias("hub_private_repo", ("private",)),
    Alias("hub_revision", ("revision",)),
    Alias("hub_token", ("token",)),
    # the example scripts' model and data arguments (TRL names the student model_name_or_path too)
    Alias("model_name_or_path", ("model", "student")),
    Alias("teacher_model_name_or_path", ("teacher",)),
    Alias("dataset_name", ("data",)),
    Alias("dataset_config_name", ("data_config",)),
    Alias("validation_file", ("dev_file",)),
    Alias("max_seq_length", ("max_length",)),
    Alias("text_column_name", ("text_column",)),
    Alias("label_column_name", ("label_column",)),
    Alias("do_regression", ("regression",)),
    Alias("metric_name", ("metric",), training=True),
)

TRAINING_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainOptions))


def aliases_for(fields: Collection[str]) -> dict[str, tuple[Alias, str]]:
    """alias name → (its row, the option it means) for a command whose options are `fields`."""
    fields = set(fields)
    trains = TRAINING_FIELDS <= fields
    out = {}
    for alias in ALIASES:
        target = next((t for t in alias.targets if t in fields), None)
        if target and alias.name not in fields and (trains or not alias.training):
            out[alias.name] = (alias, target)
    return out


def also_known_as(fields: Collection[str]) -> dict[str, list[str]]:
    """option → its aliases as the command line spells them (--learning-rate), for --help."""
    out: dict[str, list[str]] = {}
    for name, (_, target) in aliases_for(fields).items():
        out.setdefault(target, []).append(option_name(name))
    return out


def resolve(name: str, value: Any, fields: Collection[str]) -> tuple[str, Any]:
    """(option, value) for `name` given as `value`: an alias becomes its option, its value converted."""
    found = aliases_for(fields).get(name)
    if found is None:
        return name, value
    alias, target = found
    return target, alias.value(value, name) if alias.value else value


def resolve_mapping(mapping: dict[str, Any], fields: Collection[str], source: str = "") -> dict[str, Any]:
    """`mapping` (keys underscored) with its aliases replaced by their options; an option given twice, under its
    own name and an alias, is refused: which one was meant is a guess."""
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for key, value in mapping.items():
        name, value = resolve(key, value, fields)
        if name in out:
            where = f"{source}: " if source else ""
            raise DistilkitError(
                f"{where}{option_name(given[name])} and {option_name(key)} both set {option_name(name)}; keep one"
            )
        out[name], given[name] = value, key
    return out


def resolve_argv(argv: list[str], fields: Collection[str]) -> list[str]:
    """Command-line tokens with each alias (`--learning-rate 1e-3`, `--fp16`, `--warmup-ratio=0.1`) replaced by
    its option and value (`--lr 1e-3`, `--precision fp16`, `--warmup 0.1`); other tokens are kept as they are."""
    known = aliases_for(fields)
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        name, eq, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        found = known.get(name.replace("-", "_"))
        if found is None:
            out.append(arg)
            continue
        alias, target = found
        if alias.value is None:  # a plain rename: the value tokens follow unchanged
            out.append(f"--{target}{eq}{value}")
            continue
        if not eq:  # the value is the next token; a switch may stand alone (the commands that train take no
            following = argv[i] if i < len(argv) else None  # positional arguments: a next word is its value)
            if alias.flag and (following is None or following.startswith("--")):
                value = "true"
            elif following is None:
                raise DistilkitError(f"{option_name(alias.name)}: expected a value")
            else:
                value, i = following, i + 1
        out += [f"--{target}", str(alias.value(value, alias.name))]
    return out


def nearest(given: str, fields: Collection[str], cutoff: float = 0.6) -> str | None:
    """The option most like the unknown name `given` (underscored), aliases included: the same name but for its
    underscores (batchsize → batch_size), else the one sharing the most words with it and adding the fewest
    (per_device_train_batchsize → per_device_train_batch_size, so --batch-size), else difflib's closest. An alias
    found is named by its option."""
    known = aliases_for(fields)
    names = [*fields, *known]
    squeezed = given.replace("_", "")
    best = next((n for n in names if n.replace("_", "") == squeezed), None)
    if best is None:
        words = set(given.split("_"))
        scored = [(len(words & set(n.split("_"))) - len(set(n.split("_")) - words), n) for n in names]
        score, name = max(scored, default=(0, ""))
        best = name if score > 0 else None
    if best is None:
        close = difflib.get_close_matches(given, names, 1, cutoff)
        best = close[0] if close else None
    return known[best][1] if best in known else best
