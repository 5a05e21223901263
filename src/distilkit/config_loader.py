"""One loader for options read from YAML: `--config` files, recipe sections, search's --base/--options/--space.

One function checks them all so that the same mistake gets the same answer wherever it is made: every mapping of
options goes through `load_options`, which refuses a bad one with one line naming the file and, in a recipe, the
section:

- keys may be dashed or underscored, as on the command line (batch-size = batch_size), and spelt as Hugging Face
  does (learning_rate = lr: distilkit.option_aliases); an unknown key gets the nearest valid name;
- each value is checked against its dataclass field's annotation (str, int, float, bool, Optional, Literal,
  list, dict); where a number is expected a string that parses as one is taken as that number, because YAML 1.1
  (PyYAML) reads `lr: 1e-4` as the text "1e-4";
- ranges are checked by building the dataclass, whose `__post_init__` runs the `option_rules` checks, so a
  value is refused alike whether it comes from the command line, a config file, a recipe or a search.

Only the standard library, PyYAML and distilkit's option modules are imported: `distilkit --help` stays light.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
import typing
from typing import Literal, Union, get_args, get_origin

import yaml

from distilkit.errors import DistilkitError
from distilkit.option_aliases import aliases_for, nearest, resolve
from distilkit.option_rules import option_name, parse_number

BOOL_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def read_yaml(path: str, not_found: str):
    """The YAML content of `path` (None for an empty file); a missing file or bad syntax is one line."""
    if not os.path.isfile(path):
        raise DistilkitError(not_found)
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        reason = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise DistilkitError(f"{where}: not valid YAML ({reason}); fix the file's syntax") from None


def _prefix(source: str, where: str) -> str:
    return f"{source}: {where}: " if where else f"{source}: "


# Options that were renamed: the old name gets one line saying the new one instead of "unknown option".
RENAMED = {"recipe": "method"}


def renamed_message(old: str) -> str:
    new = RENAMED[old]
    return (
        f"--{old.replace('_', '-')} is now --{new.replace('_', '-')} (the distillation method: kd, tinybert, "
        'distilbert, minilm); "recipe" now means only a pipeline file for distilkit run'
    )


def check_keys(mapping, valid, source: str, where: str = "", of: str = "", values: bool = True) -> dict:
    """`mapping` with its keys underscored and Hugging Face's names replaced by distilkit's (with `values`, their
    values too: warmup_ratio: 0.1 is warmup: 0.1; search's --space keeps its ranges as they are), after refusing a
    key that is not in `valid`.

    The message takes the form its context reads best in: `unknown option 'x'` for a whole options file,
    `unknown key 'x' in students.s1` for a recipe section, `'x' is not an option of finetune` where the command
    the options belong to is chosen by another option (search --command).
    """
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        place = f"{source}: {where}" if where else source
        raise DistilkitError(f"{place} must be a mapping of option: value, got {type(mapping).__name__}")
    valid = list(valid)
    aliases = aliases_for(valid)
    out: dict = {}
    given: dict = {}
    for key, value in mapping.items():
        name = str(key).replace("-", "_")
        if name in aliases:
            try:
                name, value = resolve(name, value, valid) if values else (aliases[name][1], value)
            except DistilkitError as err:
                raise DistilkitError(f"{_prefix(source, where)}{err}") from None
        if name not in valid and RENAMED.get(name) in valid:
            raise DistilkitError(f"{_prefix(source, where)}{renamed_message(name)}")
        if name not in valid:
            near = nearest(name, valid, cutoff=0.5)
            hint = f"; did you mean {near!r}?" if near else f"; valid keys: {', '.join(valid)}"
            what = (
                f"{key!r} is not an option of {of}"
                if of
                else f"unknown key {key!r} in {where}"
                if where
                else f"unknown option {key!r}"
            )
            raise DistilkitError(f"{source}: {what}{hint}")
        if name in out:  # batch-size and batch_size, or lr and learning_rate: which one was meant is a guess, so ask
            first, second = (str(k).replace("-", "_") for k in (given[name], key))
            twice = (
                f"{name} is given twice (dashed and underscored)"
                if first == second
                else f"{option_name(first)} and {option_name(second)} both set {option_name(name)}"
            )
            raise DistilkitError(f"{_prefix(source, where)}{twice}; keep one")
        out[name], given[name] = value, key
    return out


@functools.cache
def _field_types(cls) -> dict[str, object]:
    # the config modules use `from __future__ import annotations`: resolve the annotation strings once per class
    return typing.get_type_hints(cls)


class _Mismatch(Exception):
    """A value that does not fit its annotation; `expected` completes 'must be ...'."""

    def __init__(self, expected: str):
        super().__init__(expected)
        self.expected = expected


PLURALS = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}


def _describe(tp) -> str:
    """What `tp` asks for, to complete "must be ...": "an integer", "one of kd, tinybert", "a list of strings"."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is list or tp is list:
        return "a list" + (f" of {PLURALS.get(args[0]) or 'items each ' + _describe(args[0])}" if args else "")
    if origin is dict or tp is dict:
        return "a mapping" + (f" of names to {PLURALS.get(args[1]) or _describe(args[1])}" if args else "")
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def convert(value, tp):
    """`value` as the annotation `tp` asks, or raise `_Mismatch`; types this loader does not know pass as given."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):  # Optional[X] (and X | Y): the first member that takes the value
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        for member in members:
            try:
                return convert(value, member)
            except _Mismatch as bad:
                if len(members) == 1:  # Optional[X]: X's own words ("quote it in YAML")
                    raise bad from None
        raise _Mismatch(_describe(tp))
    if origin is Literal:
        for choice in args:  # type too: YAML's `no` (False) must not match a choice such as 0
            if value == choice and type(value) is type(choice):
                return choice
        raise _Mismatch(_describe(tp))
    if tp is bool:
        if isinstance(value, str) and value.lower() in BOOL_WORDS:
            return BOOL_WORDS[value.lower()]
        if isinstance(value, bool):
            return value
        raise _Mismatch(_describe(tp))
    if tp in (int, float):
        number = parse_number(value.strip()) if isinstance(value, str) else value
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise _Mismatch(_describe(tp))
        if tp is int and isinstance(number, float):  # YAML's 32.0 is 32; 2.5 is no integer
            if not number.is_integer():
                raise _Mismatch(_describe(tp))
            return int(number)
        return number  # an int where a float is expected stays an int, as Python's numeric tower allows
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):  # `student: 3` means the text "3"
            return str(value)
        raise _Mismatch("a string" if value is None else "a string (quote it in YAML)")
    if origin in (list, dict) or tp in (list, dict):
        if not isinstance(value, origin or tp):
            raise _Mismatch(_describe(tp))
        try:  # one bad item: the message shows the whole value, so it says what the whole must be
            if not args:
                return value
            if isinstance(value, list):
                return [convert(v, args[0]) for v in value]
            return {convert(k, args[0]): convert(v, args[1]) for k, v in value.items()}
        except _Mismatch:
            raise _Mismatch(_describe(tp)) from None
    return value


def load_options(cls, mapping, source: str, where: str = "", drop=(), extra=()) -> dict:
    """Check `mapping` as options of the config dataclass `cls`; return them with underscored keys and values
    converted to their fields' types (only the keys given: defaults stay with the dataclass).

    source: the file (or flag) the mapping came from; where: the section inside it (recipes), both named by every
    error. drop: fields the caller sets itself, so not accepted here (a student's teacher and output). extra: keys
    that are not fields but belong to the section (a recipe teacher's `run`); they pass through unchecked.
    """
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in drop}
    given = check_keys(mapping, [*fields, *extra], source, where)
    hints, prefix = _field_types(cls), _prefix(source, where)
    options = {}
    for key, value in given.items():
        if key in extra:
            continue
        try:
            options[key] = convert(value, hints[key])
        except _Mismatch as bad:
            rule = fields[key].metadata.get("rule")  # a range says more than "a number": "an integer ≥ 1"
            expected = rule.describe() if rule else bad.expected
            raise DistilkitError(f"{prefix}{option_name(key)} {value!r}: must be {expected}") from None
    try:
        built = cls(**options)
    except DistilkitError as err:  # a range of option_rules: "--batch-size 0: must be an integer ≥ 1"
        raise DistilkitError(f"{prefix}{err}") from None
    # the rules may have normalised a value (32.0 → 32): hand on what the command itself would see
    checked = {key: getattr(built, key) for key in options}
    return {key: checked[key] if key in checked else value for key, value in given.items()}
