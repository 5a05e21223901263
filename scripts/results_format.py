"""Formatting shared by the per-benchmark sections of docs/results.md (results_accuracy.py, results_speed.py).

Each function takes the results folder and returns one section of Markdown, or "" when its JSON is missing. The
numbers are the fields as stored in benchmarks/results/<name>.json; nothing is computed here beyond formatting
(percentages, x-ratios, rounding). Each section names its script, how to rerun it (the usage line of the script's
docstring), the commands the JSON stores, and the machine; the `date` fields stay out of the docs.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterable
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


# --- formatting ------------------------------------------------------------------------------------------------


def load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def pt(x: float) -> str:
    return f"{100 * x:+.2f} pt"


def interval(pair: list[float] | None, signed: bool = False) -> str:
    return "" if not pair else "[" + ", ".join(f"{100 * v:{'+' if signed else ''}.2f}" for v in pair) + "]"


def num(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def times(x: float | None) -> str:
    """A ratio: two decimals, or all that are stored where there are more (1.005 stays 1.005x)."""
    return "–" if x is None else f"{x:.2f}x" if round(x, 2) == x else f"{x:g}x"


def each(values: Iterable, fmt: Callable = str) -> str:
    return " / ".join(fmt(v) for v in values)


def cell(text: object) -> str:
    """Text from a JSON in a table cell or prose: its pipes and backticks escaped."""
    return str(text).replace("|", "\\|").replace("`", "\\`")


def compact(value: object) -> str:
    """A stored dict or list on one line: `a 1, b 2`; nested dicts in parentheses."""
    if isinstance(value, dict):
        return ", ".join(
            f"{k} ({compact(v)})" if isinstance(v, dict) else f"{k} {compact(v)}" for k, v in value.items()
        )
    if isinstance(value, list):
        return each(value, compact)
    return cell(value)


def table(header: str, rows: Iterable[str | list]) -> list[str]:
    """A Markdown table: the header's cells and each row's are separated by " | " (a row may be a list of cells)."""
    rows = [row if isinstance(row, str) else " | ".join(str(c) for c in row) for row in rows]
    return [f"| {header} |", "|" + "---|" * (header.count(" | ") + 1), *(f"| {row} |" for row in rows)]


def usage(script: str) -> str:
    """The line of the script's docstring that runs it (`python benchmarks/<script>.py [options]`)."""
    doc = ast.get_docstring(ast.parse((BENCHMARKS / f"{script}.py").read_text(encoding="utf-8"))) or ""
    return next(line.strip() for line in doc.splitlines() if f"benchmarks/{script}.py" in line)


def default(script: str, function: str, argument: str) -> object:
    """The default value of a function's argument in benchmarks/<script>.py (a threshold written once, in its code)."""
    tree = ast.parse((BENCHMARKS / f"{script}.py").read_text(encoding="utf-8"))
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)
    names = [a.arg for a in node.args.args][-len(node.args.defaults) :]
    return ast.literal_eval(node.args.defaults[names.index(argument)])


def heading(title: str, script: str, anchor: str, about: str = "") -> list[str]:
    lines = [f"## {title} (`benchmarks/{script}.py`) {{#{anchor}}}", ""]
    return lines + ([about, ""] if about else []) + [f"Rerun: `{usage(script)}`", ""]


def machines(labelled: Iterable[tuple[str, str]]) -> list[str]:
    """One line naming the machine, or each machine with the rows that ran on it."""
    by_machine: dict[str, list[str]] = {}
    for label, machine in labelled:
        labels = by_machine.setdefault(machine, [])
        labels += [] if label in labels else [label]
    if len(by_machine) == 1:
        return ["", f"Machine: {next(iter(by_machine))}."]
    return ["", "Machines: " + "; ".join(f"{m} ({', '.join(labels)})" for m, labels in by_machine.items()) + "."]


def commands(pairs: Iterable[tuple[str, str]], collapsed: bool = False) -> list[str]:
    items = [f"- `{label}`: `{command}`" for label, command in pairs]
    if collapsed:
        return ["", '??? note "Commands"', "", *("    " + item for item in items)]
    return ["", "Commands:", "", *items]


def done(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def keyed_table(results: Path, name: str, title: list[str], header: str, row: Callable[[str, dict], str]) -> str:
    """The common section: `title` (heading()), one table row per entry of <name>.json, the entries' commands
    and their machines; "" when the JSON is missing."""
    data = load(results, name)
    if not data:
        return ""
    lines = title + table(header, [row(key, entry) for key, entry in data.items()])
    lines += commands((key, entry["command"]) for key, entry in data.items())
    return done(lines + machines((key, entry["machine"]) for key, entry in data.items()))
