"""Unlabeled transfer sets: texts without labels that the teacher labels for the student (`distill --unlabeled`).

Hinton et al. (2015) call them the transfer set; DistilBERT and TinyBERT distil on extra in-domain text the same
way. The rows take the labelled data's shape (text [+ text_pair], or tokens) so they tokenize, augment and go
through the teacher cache with the labelled ones; their labels are placeholders (the first label name; for
token classification a placeholder tag per word, which marks each word's first piece for per-token KD) and
a `labeled` flag of 0 tells the distiller to leave them out of every label loss.

Accepted: raw text with one text per line (`.txt`/`.text`, also gzipped; for token classification its words are
split on whitespace), CSV/TSV/JSONL (the text column(s), or the tokens column; any label column is ignored),
CoNLL (`.conll`, or `--format conll`; tags ignored), or a `save_to_disk` folder (its train split, else its
only split).
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from distilkit.config import DataOptions
from distilkit.data.dataset import SEQ, TOK, normalise_rows
from distilkit.data.readers import detect_format, read_disk, read_file, read_text, text_lines
from distilkit.errors import DistilkitError

PLAIN_TEXT = (".txt", ".text")
UNLABELED = "unlabeled"  # the TaskData split that holds the transfer set until it joins the training set


def read_unlabeled_rows(path: Path, task: str, opts: DataOptions) -> tuple[list[dict], bool]:
    """(the file's rows, raw; whether it was plain text): one {"text"} (or {"tokens"}) per line of a plain text
    file, else the reader's rows."""
    if not path.exists():
        raise DistilkitError(f"--unlabeled {path}: no such file or folder")
    if path.is_dir():
        splits = read_disk(path)
        rows = splits.get("train") or (next(iter(splits.values())) if len(splits) == 1 else None)
        if rows is None:
            raise DistilkitError(f"--unlabeled {path}: the folder has splits {', '.join(splits)} but no train split")
        return rows, False
    suffixes = [s.lower() for s in path.suffixes if s != ".gz"]
    if opts.format == "auto" and suffixes and suffixes[-1] in PLAIN_TEXT:
        lines = [line.strip() for line in text_lines(read_text(path))]
        key = (lambda line: {"tokens": line.split()}) if task == TOK else (lambda line: {"text": line})
        return [{**key(line), "_where": f"{path}:{i + 1}"} for i, line in enumerate(lines) if line], True
    return read_file(path, detect_format(path, opts.format)), False


def load_unlabeled(
    path: str,
    task: str,
    opts: DataOptions,
    is_pair: bool,
    labels: list[str],
    regression: bool,
    limit: int | None,
    seed: int,
) -> list[dict]:
    """Rows of the transfer set in the labelled data's shape, with placeholder labels; at most `limit` of them
    (a seeded sample)."""
    raw, plain = read_unlabeled_rows(Path(path), task, opts)
    if not raw:
        raise DistilkitError(f"--unlabeled {path}: no rows found")
    if plain:  # the columns named for the labelled file do not apply to lines of text
        opts = dataclasses.replace(opts, text_column="text", text_pair_column=None, tokens_column="tokens")
    rows, pair = normalise_rows(raw, task, opts, has_labels=False)
    if task == SEQ and pair != is_pair:
        want = "text pairs (two text columns)" if is_pair else "single texts"
        raise DistilkitError(
            f"--unlabeled {path}: the labelled data are {want} but this file is not; "
            f"give it the same columns ({'--text-column and --text-pair-column' if is_pair else '--text-column'})"
        )
    if limit is not None and len(rows) > limit:
        rows = random.Random(seed).sample(rows, limit)
    rows = [dict(row) for row in rows]  # labels are filled in below: rows of a ColumnRows are read-only
    placeholder = 0.0 if regression else (labels[0] if labels else "0")
    for row in rows:
        if task == TOK:
            row["tags"] = [placeholder] * len(row["tokens"])
        else:
            row["label"] = placeholder
    return rows
