"""Tokenization: `TaskData` rows → `datasets.Dataset`s of input ids and labels, plus dynamic-padding collators.

Sequence classification: label ids (or floats for regression) in `labels`. Token classification: each word's
tag goes to its first word-piece, the other pieces and special tokens get -100 (ignored by the loss and the
metrics). Examples longer than `max_length` are truncated and counted, so the user learns how much was cut.
"""

from __future__ import annotations

import datasets
from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

from distilkit.data.dataset import TOK, TaskData
from distilkit.errors import DistilkitError

IGNORE = -100


def _sequence_batch(batch, tokenizer, max_length, label2id, regression):
    pairs = batch.get("text_pair")
    enc = tokenizer(batch["text"], pairs, truncation=True, max_length=max_length)
    out = {k: enc[k] for k in enc.keys()}
    out["truncated"] = [bool(e.overflowing) for e in enc.encodings]
    if "label" in batch:
        out["labels"] = [float(v) if regression else label2id[v] for v in batch["label"]]
    return out


def _token_batch(batch, tokenizer, max_length, label2id):
    enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
    out = {k: enc[k] for k in enc.keys()}
    out["labels"], out["word_ids"], out["truncated"] = [], [], []
    for i, words in enumerate(batch["tokens"]):
        word_ids = enc.word_ids(i)
        seen = [w for w in word_ids if w is not None]
        out["truncated"].append(not seen or max(seen) < len(words) - 1)
        out["word_ids"].append([-1 if w is None else w for w in word_ids])  # -1 = special token
        labels, previous = [], None
        for w in word_ids:
            first_piece = w is not None and w != previous
            labels.append(label2id[batch["tags"][i][w]] if first_piece and "tags" in batch else IGNORE)
            previous = w
        out["labels"].append(labels)
    if "tags" not in batch:
        del out["labels"]
    return out


def encode_rows(rows: list[dict], task: str, tokenizer, max_length: int, label2id: dict, regression: bool):
    """Tokenize one split with `datasets.map(batched=True)`. Returns (Dataset, number of truncated examples).

    The result keeps `word_ids` for token classification (the Trainer drops it: the model does not take it;
    `predict` uses it to map word-pieces back to words).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise DistilkitError(
            f"tokenizer {type(tokenizer).__name__} is not a fast (Rust) tokenizer; distilkit needs one for "
            "word alignment and truncation counts — save the model with a tokenizer.json"
        )
    columns = [c for c in rows[0] if not c.startswith("_")] if rows else []
    raw = datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in columns})
    if task == TOK:
        fn, kwargs = _token_batch, dict(tokenizer=tokenizer, max_length=max_length, label2id=label2id)
    else:
        fn = _sequence_batch
        kwargs = dict(tokenizer=tokenizer, max_length=max_length, label2id=label2id, regression=regression)
    encoded = raw.map(fn, batched=True, batch_size=1000, fn_kwargs=kwargs, remove_columns=columns,
                      desc="tokenizing", load_from_cache_file=False)
    truncated = int(sum(encoded["truncated"])) if len(encoded) else 0
    return encoded.remove_columns("truncated"), truncated


def encode_splits(data: TaskData, tokenizer, max_length: int, label2id: dict | None = None):
    """Tokenize every split. Returns ({split: Dataset}, {split: truncated count})."""
    label2id = label2id if label2id is not None else {name: i for i, name in enumerate(data.labels)}
    encoded, truncated = {}, {}
    for split, rows in data.splits.items():
        encoded[split], truncated[split] = encode_rows(rows, data.task, tokenizer, max_length, label2id, data.regression)
    return encoded, truncated


def collator_for(task: str, tokenizer):
    """Dynamic padding: each batch is padded to its own longest example (labels padded with -100)."""
    if task == TOK:
        return DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORE)
    return DataCollatorWithPadding(tokenizer)
