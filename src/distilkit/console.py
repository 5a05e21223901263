"""What a command prints as its result (a table, predictions, the folder it wrote), apart from its progress.

From the command line the result is printed; from Python (`distilkit.finetune(...)`, ...) it is returned instead,
and `show` prints nothing while `results_returned()` is active. Progress lines (data, model sizes, stages, bars)
print in both.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_printing: ContextVar[bool] = ContextVar("distilkit_prints_results", default=True)


def show(text: str = "", end: str = "\n") -> None:
    """Print a command's result, unless it is being returned to Python code instead."""
    if _printing.get():
        sys.stdout.write(text + end)
        sys.stdout.flush()


def showing() -> bool:
    return _printing.get()


@contextmanager
def results_returned() -> Iterator[None]:
    """Within the block, results are returned rather than printed."""
    token = _printing.set(False)
    try:
        yield
    finally:
        _printing.reset(token)
