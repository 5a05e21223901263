"""From "where the data is" to a checked `TaskData`: task, label map and train/dev/test rows.

Rows are normalised to two shapes:
- sequence classification: {"text", "text_pair" (pairs only), "label"} — label is a str, or a float for regression;
- token classification: {"tokens": [...], "tags": [...]}.
Every check that can fail names the file and line (`_where`) and what to do.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from distilkit.config import DataOptions, parse_split_fractions
from distilkit.data import builtin
from distilkit.data.columns import ColumnRows, is_column_rows
from distilkit.data.labels import (
    check_label_types,
    check_tag_types,
    check_tokens,
    is_number,
    plain,
    regression_reason,
    show,
)
from distilkit.data.sources import load_raw_splits
from distilkit.errors import DistilkitError

SEQ = "sequence-classification"
TOK = "token-classification"


@dataclass
class TaskData:
    """A dataset ready for tokenization: its task, labels and rows per split."""

    name: str
    task: str
    regression: bool
    labels: list[str]
    splits: dict[str, list[dict]] = field(default_factory=dict)
    is_pair: bool = False
    corpus: object = None  # general distillation: the raw-text corpus, a memory-mapped datasets.Dataset

    def split_name(self, split: str) -> str:
        """A split as summaries name it: "train.csv test split", or the file it came from when that is not the
        data's own (a --test-file): "test.csv (test split)"."""
        rows = self.splits.get(split) or []
        where = str(rows[0].get("_where", "")) if rows else ""
        source = Path(where.split("[")[0].rsplit(":", 1)[0]).name if where else ""
        if source and source != self.name:
            return f"{source} ({split} split)"
        return f"{self.name} {split} split"

    @property
    def is_bio(self) -> bool:
        """True when the tags look like BIO/IOB2 entity tags (then seqeval's entity metrics apply)."""
        return (
            self.task == TOK
            and any(t[:2] in ("B-", "I-") for t in self.labels)
            and all(t == "O" or t[:2] in ("B-", "I-", "E-", "S-") for t in self.labels)
        )


def sample_rows(rows, limit: int, seed: int):
    """`random.Random(seed).sample(rows, limit)`; for a ColumnRows the same choice, as a view."""
    if is_column_rows(rows):
        return rows.select(random.Random(seed).sample(range(len(rows)), limit))
    return random.Random(seed).sample(rows, limit)


def _keyed(rows: ColumnRows, stratify_key):
    """A stratify key for positions: the key of the row at each position, read in one pass."""
    if stratify_key is None:
        return None
    keys = [stratify_key(r) for r in rows]
    return lambda position: keys[position]


def renamed(rows: ColumnRows, keys: dict[str, str], final: dict[str, Callable]) -> ColumnRows:
    """Normalised ColumnRows: distilkit's keys read from the given columns, stored values converted as the
    readers would (ClassLabel names), then into the row shape (`final`: str for texts, lists of str for words)."""
    convert = {}
    for key, column in keys.items():
        stored, last = rows.convert.get(column), final.get(key)
        if stored and last:
            convert[key] = lambda v, a=stored, b=last: b(a(v))
        elif stored or last:
            convert[key] = stored or last
    return rows.derived(names={k: rows.names[c] for k, c in keys.items()}, convert=convert)


class _Pairs:
    """(value, where) of one column of ColumnRows, read again each time it is iterated (no list of them kept)."""

    def __init__(self, rows: ColumnRows, column: str) -> None:
        self.rows, self.column = rows, column

    def __iter__(self):
        return ((r[self.column], r["_where"]) for r in self.rows)


def str_list(values: list) -> list[str]:
    return [str(v) for v in values]


def infer_task(rows: list[dict], fmt: str | None, opts: DataOptions) -> str:
    if opts.task != "auto":
        return opts.task
    if fmt == "conll":
        return TOK
    first = rows[0]
    if isinstance(first.get(opts.tokens_column), list) or isinstance(first.get("tokens"), list):
        return TOK
    return SEQ


def _columns_error(row: dict, wanted: str, option: str) -> DistilkitError:
    found = [plain(str(c)) for c in row if c != "_where"]  # repr for odd names: stray spaces, newlines
    where = row["_where"].rsplit(":", 1)[0]
    return DistilkitError(
        f"{where}: no column {wanted!r}; columns found: {', '.join(found)}; pass {option} with one of them"
    )


def _group_column(first: dict, opts: DataOptions) -> str | None:
    """--group-column, checked against the first row's columns."""
    if opts.group_column and opts.group_column not in first:
        raise _columns_error(first, opts.group_column, "--group-column")
    return opts.group_column


def _normalise_token_rows(rows: list[dict], opts: DataOptions, has_labels: bool) -> list[dict]:
    out, first = [], rows[0]
    tok_col = opts.tokens_column if opts.tokens_column in first else "tokens"
    tag_col = (
        opts.tags_column
        if opts.tags_column in first
        else next((c for c in ("tags", "ner_tags", "pos_tags") if c in first), opts.tags_column)
    )
    if tok_col not in first:
        raise _columns_error(first, opts.tokens_column, "--tokens-column")
    if has_labels and tag_col not in first:
        raise _columns_error(first, opts.tags_column, "--tags-column")
    group_col = _group_column(first, opts)
    raw_tags = []
    streamed = is_column_rows(rows)  # checked row by row, kept in their Arrow table
    for row in rows:
        tokens, tags = row.get(tok_col), row.get(tag_col) if has_labels else None
        if not isinstance(tokens, list) or not tokens:
            raise DistilkitError(f"{row['_where']}: {tok_col!r} must be a non-empty list of words")
        if has_labels and (not isinstance(tags, list) or len(tags) != len(tokens)):
            raise DistilkitError(
                f"{row['_where']}: {tag_col!r} must be a list with one tag per word ({len(tokens)} words)"
            )
        check_tokens(tokens, row["_where"], tok_col)
        if not streamed:
            if has_labels:
                raw_tags.append((tags, row["_where"]))
            item = {"tokens": [str(t) for t in tokens], "_where": row["_where"]}
            if has_labels:
                item["tags"] = [str(t) for t in tags]
            if group_col:
                item["group"] = str(row.get(group_col))
            out.append(item)
    check_tag_types(_Pairs(rows, tag_col) if streamed and has_labels else raw_tags, tag_col)
    if streamed:
        keys = {
            "tokens": tok_col,
            **({"tags": tag_col} if has_labels else {}),
            **({"group": group_col} if group_col else {}),
        }
        return renamed(rows, keys, {"tokens": str_list, "tags": str_list, "group": str})
    return out


def normalise_rows(rows: list[dict], task: str, opts: DataOptions, has_labels: bool = True) -> tuple[list[dict], bool]:
    """Map file columns to the standard row shape and reject empty texts or labels. Returns (rows, is_pair)."""
    if task == TOK:
        return _normalise_token_rows(rows, opts, has_labels), False
    out = []
    first = rows[0]
    text_col, pair_col = opts.text_column, opts.text_pair_column
    if text_col not in first and pair_col is None and "text_a" in first and "text_b" in first:
        text_col, pair_col = "text_a", "text_b"
    if text_col not in first:
        raise _columns_error(first, text_col, "--text-column")
    if pair_col and pair_col not in first:
        raise _columns_error(first, pair_col, "--text-pair-column")
    if has_labels and opts.label_column not in first:
        raise _columns_error(first, opts.label_column, "--label-column")
    group_col = _group_column(first, opts)
    streamed = is_column_rows(rows)  # checked row by row, kept in their Arrow table
    for row in rows:
        item = {"_where": row["_where"]}
        for key, col in (("text", text_col), ("text_pair", pair_col)):
            if col is None:
                continue
            value = row.get(col)
            if value is None or str(value).strip() == "":
                raise DistilkitError(f"{row['_where']}: empty text in column {col!r}; fill it in or remove the row")
            if isinstance(value, (list, dict)):
                raise DistilkitError(
                    f"{row['_where']}: column {col!r} holds {show(value)}, not a text; "
                    "for a list of words per row pass --task token-classification"
                )
            item[key] = str(value)
        if has_labels:
            label = row.get(opts.label_column)
            if label is None or str(label).strip() == "":
                raise DistilkitError(
                    f"{row['_where']}: empty label in column {opts.label_column!r}; fill it in or remove the row"
                )
            item["label"] = label
        if group_col:
            item["group"] = str(row.get(group_col))
        if not streamed:
            out.append(item)
    if has_labels:
        labelled = rows if streamed else out
        check_label_types(
            ((r[opts.label_column if streamed else "label"], r["_where"]) for r in labelled), "label", opts.label_column
        )
    if streamed:
        keys = {"text": text_col, "text_pair": pair_col, "label": opts.label_column if has_labels else None}
        keys["group"] = group_col
        final = {"text": str, "text_pair": str, "group": str}
        return renamed(rows, {k: c for k, c in keys.items() if c}, final), bool(pair_col)
    return out, pair_col is not None


def groups_of(rows) -> list[str] | None:
    """The group of each row (--group-column), or None when the data names none."""
    if not len(rows) or "group" not in rows[0]:
        return None
    return [str(r["group"]) for r in rows]


def _label_str(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def decide_regression(train_rows: list[dict], forced: bool | None) -> bool:
    if forced is not None:
        if forced:
            for r in train_rows:
                if not is_number(r["label"]):
                    raise DistilkitError(
                        f"{r['_where']}: label {show(r['label'])} is not a number, but --regression is on"
                    )
        return forced
    reason = regression_reason(train_rows)
    if reason is not None:  # said out loud: a user with classes "0.5"/"1.5" must learn why they got regression
        value = str(reason["label"]).strip()
        print(
            f"regression: the labels are numbers, not all integers ({reason['_where']}: {value}); "
            "pass --regression false to treat them as classes",
            flush=True,
        )
    return reason is not None


def build_labels(task: str, train_rows: list[dict], source: str, known: list[str] | None = None) -> list[str]:
    """The label map, from the training split only: numeric labels sort as numbers, others alphabetically."""
    if task == TOK:
        values = sorted({t for r in train_rows for t in r["tags"]})
    else:
        values = sorted({_label_str(r["label"]) for r in train_rows})
    if all(is_number(v) for v in values):
        values.sort(key=float)
    elif "O" in values:  # BIO tag sets read best with O first
        values.remove("O")
        values.insert(0, "O")
    if known is not None:  # continual learning: old ids stay, new labels are appended in sorted order
        return list(known) + [v for v in values if v not in known]
    if len(values) < 2:
        what = "tag" if task == TOK else "class"
        raise DistilkitError(
            f"{source}: training data has a single {what} {values[0]!r}; classification needs at least two "
            f"— check --label-column or add examples of other {what}es"
        )
    return values


def check_known_labels(task: str, rows: list[dict], labels: list[str], split: str, from_training: bool = False) -> None:
    """Every dev/test label must be one the model was trained on: the labels of the training split when
    `from_training` (finetune), else those of a saved model (evaluate, a distillation teacher)."""
    known = set(labels)
    for r in rows:
        values = r["tags"] if task == TOK else [_label_str(r["label"])]
        for v in values:
            if v in known:
                continue
            if not labels:  # a model without a label map: "(known: )" told the user nothing
                raise DistilkitError(
                    f"{r['_where']}: {split} label {show(v)} cannot be matched: the model has no label names "
                    "(no id2label in its config); use a model fine-tuned for classification (distilkit finetune)"
                )
            shown = ", ".join(plain(str(x))[:30] for x in labels[:20]) + (" ..." if len(labels) > 20 else "")
            if from_training:
                raise DistilkitError(
                    f"{r['_where']}: {split} label {show(v)} never occurs in the training data (known: {shown}); "
                    "fix the label or add training examples of it"
                )
            raise DistilkitError(  # the label may well be in this data's train split: it is the model that lacks it
                f"{r['_where']}: {split} label {show(v)} is not one of the model's labels ({shown}); use data "
                "labelled with the model's labels, or fine-tune a model on these"
            )


def finalise_labels(task: str, regression: bool, rows):
    """Store labels in their final type: float for regression, str otherwise. Returns the rows (changed in place,
    or a ColumnRows that converts them as they are read)."""
    if task == TOK:
        return rows
    for r in rows:
        if regression and not is_number(r["label"]):  # a regression model on data with classes: not a traceback
            raise DistilkitError(
                f"{r['_where']}: label {show(r['label'])} is not a number, but the task is regression (the model "
                "predicts one number per text); use data with numeric labels, or a classification model"
            )
        if not is_column_rows(rows):
            r["label"] = float(r["label"]) if regression else _label_str(r["label"])
    if is_column_rows(rows):
        final = float if regression else _label_str
        before = rows.convert.get("label")
        convert = {**rows.convert, "label": (lambda v: final(before(v))) if before else final}
        return rows.derived(convert=convert)
    return rows


def split_rows(rows: list[dict], fractions: tuple[float, ...], seed: int, stratify_key=None) -> list[list[dict]]:
    """Seeded split into len(fractions) parts; stratified by `stratify_key(row)` when every class has 2+ rows."""
    from sklearn.model_selection import train_test_split

    if is_column_rows(rows):  # the same partition, computed on positions: no row is copied
        positions = split_rows(list(range(len(rows))), fractions, seed, _keyed(rows, stratify_key))
        return [rows.select(part) for part in positions]
    parts, rest, rest_frac = [], list(rows), 1.0
    for i, frac in enumerate(fractions[:-1]):
        share = frac / rest_frac if rest_frac > 0 else 0
        take_rest = 1 - share
        if take_rest <= 0 or len(rest) < 2:
            parts.append(rest)
            rest = []
            rest_frac = 0
            continue
        if share <= 0:
            parts.append([])
            continue
        strat = [stratify_key(r) for r in rest] if stratify_key else None
        if strat is not None:
            counts = {}
            for s in strat:
                counts[s] = counts.get(s, 0) + 1
            n_test = round(len(rest) * take_rest)
            if min(counts.values()) < 2 or n_test < len(counts) or len(rest) - n_test < len(counts):
                strat = None
        first, rest = train_test_split(rest, test_size=take_rest, random_state=seed + i, stratify=strat)
        parts.append(first)
        rest_frac -= frac
    parts.append(rest)
    return parts


def load_task_data(
    opts: DataOptions,
    seed: int = 42,
    for_training: bool = True,
    known_labels: list[str] | None = None,
    fold: tuple[int, int] | None = None,
) -> TaskData:
    """Read, normalise, split and check the data named by `opts`.

    For training, missing dev/test splits are carved from train with `--split`, or, with `fold` = (k, K), test is
    fold k of K and dev is carved from the rest (data/folds.py). For evaluation, a single file is used whole as the
    test split.
    """
    name, raw, fmt = load_raw_splits(opts)
    for split, rows in raw.items():
        if not rows:  # a save_to_disk split with no rows (the file readers refuse empty files)
            raise DistilkitError(f"{name}: the {split} split has no rows; remove it or add data")
    first_rows = next(iter(raw.values()))
    if fmt == "builtin":
        task = builtin.task_of(opts.data)
    else:
        task = infer_task(first_rows, fmt, opts)
    splits, is_pair = {}, False
    for split, rows in raw.items():
        splits[split], is_pair = normalise_rows(rows, task, opts)
    if "all" in splits:
        rows = splits.pop("all")
        if for_training:
            splits["train"] = rows
        else:
            splits["test"] = rows
    data = TaskData(name=name, task=task, regression=False, labels=[], splits=splits, is_pair=is_pair)
    if for_training:
        _prepare_training_splits(data, opts, seed, known_labels, fold)
    for split, rows in data.splits.items():
        limit = opts.max_train_samples if split == "train" else opts.max_eval_samples
        if limit and len(rows) > limit:
            data.splits[split] = sample_rows(rows, limit, seed)
    return data


def _prepare_training_splits(data: TaskData, opts: DataOptions, seed: int, known_labels=None, fold=None) -> None:
    if "train" not in data.splits:
        raise DistilkitError(f"{data.name}: no training split; pass --train-file or a --data with training rows")
    train = data.splits["train"]
    source = train[0]["_where"].rsplit(":", 1)[0]
    if data.task == SEQ:
        data.regression = decide_regression(train, opts.regression)
    key = None if data.regression or data.task == TOK else (lambda r: _label_str(r["label"]))
    train_f, dev_f, test_f = parse_split_fractions(opts.split)
    missing = [s for s in ("dev", "test") if s not in data.splits]
    if fold is not None:
        from distilkit.data.folds import fold_splits

        k, folds = fold
        if missing != ["dev", "test"]:
            given = " and ".join(s for s in ("dev", "test") if s not in missing)
            raise DistilkitError(
                f"--folds {folds}: cross-validation splits one labelled file, and {data.name} has a {given} split "
                "of its own; give the labelled file alone (--data FILE, or --train-file without --dev-file and "
                "--test-file)"
            )
        data.splits.update(fold_splits(train, folds, k, dev_f / (train_f + dev_f), seed, key, source))
    elif missing:
        want = {"dev": dev_f, "test": test_f}
        fracs = [train_f] + [want[s] for s in missing]
        total = sum(fracs)
        parts = split_rows(train, tuple(f / total for f in fracs), seed, key)
        data.splits["train"] = parts[0]
        for s, part in zip(missing, parts[1:]):
            if part:
                data.splits[s] = part
    if not data.regression:
        data.labels = build_labels(data.task, data.splits["train"], source, known_labels)
        for split in ("dev", "test"):
            if split in data.splits:
                check_known_labels(data.task, data.splits[split], data.labels, split, from_training=True)
    for split, rows in data.splits.items():
        data.splits[split] = finalise_labels(data.task, data.regression, rows)
