"""Valid ranges of numeric options, declared beside each option and checked whenever a config is built.

A config dataclass field declares its range with `opt(default, RULE)`; every config class derives from
`Checked`, whose `__post_init__` checks each field against its rule. Because the check runs when the dataclass
is constructed, the command line, `--config` YAML, recipe sections and search trials are all checked alike,
before anything is read, trained or written. A bad value gets one line naming the option, the value and the
valid range:

    --batch-size 0: must be an integer ≥ 1
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from distilkit.errors import DistilkitError


@dataclass(frozen=True)
class Rule:
    """A closed or open interval; `integer` also refuses floats such as 2.5 (True/False are never numbers)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{kind} in {left}{_num(self.low)}, {_num(self.high)}{right}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '≥'} {_num(self.low)}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '≤'} {_num(self.high)}"
        return kind

    def accepts(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return False
        return True


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


POSITIVE = Rule(low=0, low_open=True)  # learning rates, epochs, temperatures
NON_NEGATIVE = Rule(low=0)  # weights, decay, counts of optional extras
AT_LEAST_1 = Rule(low=1, integer=True)  # batch sizes, lengths, counts
COUNT = Rule(low=0, integer=True)  # 0 = none / off
FOLDS = Rule(low=2, integer=True)  # cross-validation: one fold would test on what it trained on
FRACTION = Rule(low=0, high=1)  # probabilities, mixing weights
FRACTION_BELOW_1 = Rule(low=0, high=1, high_open=True)  # dropout, pruned share (1 would remove everything)
PROBABILITY = Rule(low=0, high=1, low_open=True)  # a chance that must happen sometimes (augmentation's word swaps)
SEED = Rule(low=0, high=2**32 - 1, integer=True)  # numpy's seed range
PORT = Rule(low=0, high=65535, integer=True)
# Far above any encoder's position limit; the model's own limit is checked when it is loaded.
MAX_LENGTH = Rule(low=4, high=1_000_000, integer=True)  # [CLS] a [SEP] b [SEP] needs 4+


def opt(default, rule: Rule):
    """A dataclass field with a default and a valid range: `lr: float = opt(5e-5, POSITIVE)`."""
    return field(default=default, metadata={"rule": rule})


def parse_number(text: str):
    """An int or float when `text` spells one, else `text` itself (YAML 1.1 reads 1e-4 as text)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text  # not a number: the rule refuses it with its message


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_options(config) -> None:
    """Raise a one-line DistilkitError for the first field whose value is outside its declared rule."""
    for f in dataclasses.fields(config):
        rule = f.metadata.get("rule")
        value = getattr(config, f.name)
        if rule is None or value is None:
            continue
        if isinstance(value, str):  # YAML 1.1 (PyYAML) reads `lr: 1e-4` as the text "1e-4"
            value = parse_number(value)
            setattr(config, f.name, value)
        if not rule.accepts(value):
            raise DistilkitError(f"{option_name(f.name)} {value!r}: must be {rule.describe()}")
        if rule.integer and isinstance(value, float):
            setattr(config, f.name, int(value))  # YAML's 32.0 → 32


class Checked:
    """Base of every config dataclass: checks the declared ranges when the config is built."""

    def __post_init__(self) -> None:
        check_options(self)
