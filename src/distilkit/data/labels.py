"""Label checks that turn silent mistakes into one-line errors before any training starts.

- JSONL keeps value types: an integer `1` among "pos"/"neg" labels would become a third class "1" and a
  `true` among numbers a class "True"; mixing types is an error naming the odd row and a typical one.
  CSV/TSV values are all strings, so a class named "1" among text classes stays allowed there.
- Lists, objects and NaN/Infinity are never labels.
- Regression is chosen when every label is a number and some are fractions; a text label among such numbers
  ("n/a", "nan") is an error rather than a silent switch to a classification with a class per number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from distilkit.errors import DistilkitError

KIND_NAMES = {"number": "a number", "text": "text", "bool": "true/false"}
KIND_PLURALS = {"number": "numbers", "text": "text", "bool": "true/false"}


def is_number(value) -> bool:
    """A finite number, or a string holding one. Booleans are not numbers (JSON true/false are classes)."""
    if isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int too large for a float
        return False


def show(value, limit: int = 60) -> str:
    """A value for an error message: repr (so 1 and '1' differ and a newline cannot break the line), JSON's
    spelling of true/false/null, cut short (a 1 MB label must not flood the terminal)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plain(name: str) -> str:
    """A column or label name as is, or its repr when it has spaces at the ends or unprintable characters."""
    return name if name.isprintable() and name == name.strip() and name else repr(name)


def _kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "number" if is_number(value) else "text"


def _check_scalar(value, where: str, what: str, column: str) -> None:
    if isinstance(value, (list, dict)):
        raise DistilkitError(
            f"{where}: {what} in column {column!r} is a JSON {'list' if isinstance(value, list) else 'object'} "
            f"({show(value)}); a {what} must be a string or a number"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise DistilkitError(
            f"{where}: {what} {show(value)} in column {column!r} is not a finite number; "
            f"fill in the {what} or remove the row"
        )


def check_label_types(items: Iterable[tuple[object, str]], what: str, column: str) -> None:
    """`items` are (value, where) pairs of one file. Raise on non-scalar values and on mixed JSON types."""
    first: dict[str, tuple[object, str]] = {}
    counts: dict[str, int] = {}
    typed = False
    for value, where in items:
        _check_scalar(value, where, what, column)
        typed = typed or not isinstance(value, str)
        kind = _kind(value)
        counts[kind] = counts.get(kind, 0) + 1
        first.setdefault(kind, (value, where))
    if not typed or len(counts) < 2:
        return  # all strings (CSV, TSV), or one type throughout
    ranked = sorted(counts, key=counts.get)
    odd, common = ranked[0], ranked[-1]  # the rarer type is the likely mistake
    (odd_value, odd_where), (common_value, common_where) = first[odd], first[common]
    raise DistilkitError(
        f"{odd_where}: {what} {show(odd_value)} is {KIND_NAMES[odd]} but most {what}s are {KIND_PLURALS[common]} "
        f"({common_where}: {show(common_value)}); mixed types would make {show(odd_value)} a class of its own — "
        f"fix it, or write every {what} as a JSON string if they are all class names"
    )


def check_tag_types(tag_lists: Iterable[tuple[list, str]], column: str) -> None:
    """Token classification: (tags, where) per sentence; every tag a scalar, one JSON type per file (integer
    ner_tags are fine)."""
    if all(isinstance(t, str) for tags, _ in tag_lists for t in tags):
        return  # the common case, one cheap pass (brown-pos has 1.16M tags)
    check_label_types([(t, where) for tags, where in tag_lists for t in tags], "tag", column)


def check_tokens(tokens: list, where: str, column: str) -> None:
    for token in tokens:
        if isinstance(token, (list, dict)) or token is None:
            raise DistilkitError(f"{where}: {column!r} holds {show(token)}; every word must be a string")


def regression_reason(rows: Iterable[dict]) -> dict | None:
    """The first row whose label makes the task regression (a number that is not an integer), checking that
    no text label hides among such numbers. None when the labels are classes. One pass, keeping no rows."""
    fractional = first_text = None
    total = texts = 0
    for r in rows:
        total += 1
        if not is_number(r["label"]):
            texts += 1
            first_text = first_text or r
        elif fractional is None and not float(r["label"]).is_integer():
            fractional = r
    if fractional is None:
        return None
    if first_text is None:
        return fractional
    if texts > total - texts:
        return None  # mostly text labels: classes (a stray number is a class name, as in any CSV)
    bad = first_text
    raise DistilkitError(
        f"{bad['_where']}: label {show(bad['label'])} is not a number, but the other labels are numbers, not all "
        f"integers ({fractional['_where']}: {show(fractional['label'])}), which means regression; fix or remove "
        "this row, or pass --regression false to treat every label as a class"
    )
