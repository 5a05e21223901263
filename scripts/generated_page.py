"""The command line shared by the scripts that generate a docs page (results_page.py, cli_reference.py): write the
page, or with --check exit 1 when the page on disk is not what its sources give."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def write_or_check(page: Path, render: Callable[[], str], sources: str, argv: list[str] | None, about: str) -> int:
    """`sources` names what the page is generated from, for the message that says how to regenerate it."""
    parser = argparse.ArgumentParser(description=about)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not page.exists() or page.read_text(encoding="utf-8") != text:
            print(f"{page} differs from {sources}: run python scripts/{Path(sys.argv[0]).name}", file=sys.stderr)
            return 1
        return 0
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text, encoding="utf-8")
    print(f"written: {page}")
    return 0
