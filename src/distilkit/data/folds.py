"""K-fold cross-validation splits (`--folds K`): fold k of one labelled file is its test split, the rest is split
into train and dev.

The folds are scikit-learn's: `StratifiedKFold` for class labels (every fold keeps the classes' proportions, so
each class must have at least K examples), `KFold` for regression and token tagging, and their group-keeping forms
(`StratifiedGroupKFold`, `GroupKFold`) when the data names groups (--group-column); all shuffled with the data
seed, so `finetune --folds 5` and `distill --folds 5` with the same seed cut the same folds (a distillation can use
the fold's own teacher, which never saw that fold). Pooling the K test splits' predictions scores every example
once: 5 folds of 2,125 articles give 2,125 test predictions instead of one split's 213.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from distilkit.data.columns import is_column_rows
from distilkit.errors import DistilkitError


def fold_positions(
    keys: list | None, count: int, folds: int, fold: int, seed: int, source: str, groups: list | None = None
) -> np.ndarray:
    """The positions of fold `fold` of `folds` among `count` rows (stratified by `keys` when given; each of
    `groups`, when given, inside one fold)."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    if count < folds:
        raise DistilkitError(f"--folds {folds}: {source} has only {count} examples; use --folds {count} or fewer")
    if groups is not None and len(set(groups)) < folds:
        raise DistilkitError(
            f"--folds {folds}: {source} has only {len(set(groups))} groups (--group-column) and each fold needs "
            f"one; use --folds {len(set(groups))} or fewer"
        )
    if keys is None:
        plain = GroupKFold if groups is not None else KFold
        parts = plain(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(count), groups=groups)
    else:
        label, smallest = min(Counter(keys).items(), key=lambda kv: (kv[1], str(kv[0])))
        if smallest < folds:
            raise DistilkitError(
                f"--folds {folds}: the smallest class of {source}, {label!r}, has {smallest} examples and each fold "
                f"needs one; use --folds {smallest} or fewer (at least 2), or add examples of {label!r}"
            )
        stratified = StratifiedGroupKFold if groups is not None else StratifiedKFold
        splitter = stratified(n_splits=folds, shuffle=True, random_state=seed)
        parts = splitter.split(np.zeros(count), keys, groups=groups)
    for i, (_, test) in enumerate(parts):
        if i == fold:
            return test
    raise AssertionError("unreachable: fold < folds is checked with the options")


def select(rows, positions) -> object:
    """Rows at `positions`: a view of ColumnRows, a list otherwise."""
    positions = [int(p) for p in positions]
    return rows.select(positions) if is_column_rows(rows) else [rows[p] for p in positions]


def fold_splits(
    rows, folds: int, fold: int, dev_share: float, seed: int, key: Callable | None, source: str
) -> dict[str, object]:
    """train / dev / test of fold `fold`: test is the fold, dev a `dev_share` of the rest (stratified), train the
    remainder. Rows with a group (--group-column) keep each group inside one fold (the dev split is not grouped)."""
    from distilkit.data.dataset import groups_of, split_rows

    keys = [key(r) for r in rows] if key else None
    test = set(fold_positions(keys, len(rows), folds, fold, seed, source, groups_of(rows)).tolist())
    rest = select(rows, [i for i in range(len(rows)) if i not in test])
    out: dict[str, object] = {"test": select(rows, sorted(test))}
    if dev_share > 0:
        train, dev = split_rows(rest, (1 - dev_share, dev_share), seed, key)
        out.update(train=train, dev=dev)
    else:
        out["train"] = rest
    return out
