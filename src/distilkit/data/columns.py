"""The rows of a `datasets.Dataset`, read on demand: what lets a labelled set larger than RAM train.

Data that `datasets` reads (Parquet, Arrow, save_to_disk folders, Hub ids, a Dataset given from Python) stays in
its memory-mapped Arrow table. `ColumnRows` shows it as the sequence of row dicts the rest of distilkit reads
(`len`, indexing, iteration, each row with its `_where`), so the line-numbered checks run as one streaming pass,
splits and samples are index arrays, and tokenization maps the table into a temporary Arrow file: no step holds
every row as a Python object. A ColumnRows is read-only: code that changes rows copies them first (`list(rows)`).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 1000  # rows per Arrow read while iterating: the memory a pass holds at a time

_scratch: Path | None = None


def scratch_file(stem: str) -> str:
    """A new Arrow file in this process's temporary folder (removed at exit): where `map` results go, so that
    they are memory-mapped and never written beside the user's data (a save_to_disk folder's own cache)."""
    global _scratch
    if _scratch is None:
        _scratch = Path(tempfile.mkdtemp(prefix="distilkit-arrow-"))
        atexit.register(shutil.rmtree, _scratch, True)
    return str(_scratch / f"{stem}-{uuid.uuid4().hex}.arrow")


class ColumnRows(Sequence):
    """Rows of `table` (a datasets.Dataset) at `positions` (all when None), named `where[position]` (or
    `where[row position]` for a file, whose rows have no split name).

    `names` maps distilkit's keys (text, text_pair, label, tokens, tags) to the table's columns once the rows are
    normalised (None: every column as it is); `convert` turns a column's stored values into what a row holds
    (ClassLabel ids into names, labels into str or float)."""

    def __init__(
        self,
        table: Any,
        where: str,
        positions: np.ndarray | None = None,
        names: dict[str, str] | None = None,
        convert: dict[str, Callable[[Any], Any]] | None = None,
        row_word: str = "",
    ) -> None:
        self.table, self.where, self.positions, self.row_word = table, where, positions, row_word
        self.names = names if names is not None else {c: c for c in table.column_names}
        self.convert = convert or {}

    def derived(self, **changes: Any) -> ColumnRows:
        fields = dict(table=self.table, where=self.where, positions=self.positions, names=self.names)
        return ColumnRows(**{**fields, "convert": self.convert, "row_word": self.row_word, **changes})

    def __len__(self) -> int:
        return len(self.table) if self.positions is None else len(self.positions)

    def _position(self, i: int) -> int:
        return i if self.positions is None else int(self.positions[i])

    def _row(self, stored: dict[str, Any], position: int) -> dict[str, Any]:
        row = {key: stored[column] for key, column in self.names.items()}
        for key, fn in self.convert.items():
            if key in row:
                row[key] = fn(row[key])
        row["_where"] = f"{self.where}[{self.row_word}{position}]"
        return row

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self.select(np.arange(len(self))[i])
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        position = self._position(i)
        return self._row(self.table[position], position)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        view = self.table.select_columns(sorted(set(self.names.values())))
        if self.positions is not None:
            view = view.select(self.positions)
        i = 0
        for batch in view.iter(batch_size=BATCH):
            n = len(next(iter(batch.values()))) if batch else 0
            for j in range(n):
                yield self._row({c: values[j] for c, values in batch.items()}, self._position(i + j))
            i += n

    def __add__(self, other: Sequence[dict]) -> list[dict]:
        return list(self) + list(other)

    def __radd__(self, other: Sequence[dict]) -> list[dict]:
        return list(other) + list(self)

    def select(self, indices: Sequence[int] | np.ndarray) -> ColumnRows:
        """The rows at `indices` (positions in this sequence), as a view: no row is read."""
        chosen = np.asarray(indices, dtype=np.int64)
        return self.derived(positions=chosen if self.positions is None else self.positions[chosen])

    def to_dataset(self, keys: list[str]) -> Any:
        """A datasets.Dataset with exactly `keys` as columns (converted as rows are), written to a temporary
        Arrow file when the table is on disk: the input of tokenization."""
        view = self.table if self.positions is None else self.table.select(self.positions)
        columns = {key: self.names[key] for key in keys}
        view = view.select_columns(sorted(set(columns.values())))

        def standard(batch: dict[str, list]) -> dict[str, list]:
            out = {}
            for key, column in columns.items():
                fn = self.convert.get(key)
                out[key] = [fn(v) for v in batch[column]] if fn else list(batch[column])
            return out

        on_disk = bool(view.cache_files)
        return view.map(
            standard,
            batched=True,
            batch_size=BATCH,
            remove_columns=view.column_names,
            cache_file_name=scratch_file("rows") if on_disk else None,
            keep_in_memory=not on_disk,
            desc="reading rows",
        )


def is_column_rows(rows: object) -> bool:
    return isinstance(rows, ColumnRows)
