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


def _encode_sequences(rows, tokenizer, max_length, label2id, regression):
    texts = [r["text"] for r in rows]
    pairs = [r["text_pair"] for r in rows] if rows and "text_pair" in rows[0] else None
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    truncated = sum(1 for e in enc.encodings if e.overflowing)
    features = {k: enc[k] for k in enc.keys()}
    if rows and "label" in rows[0]:
        features["labels"] = [float(r["label"]) if regression else label2id[r["label"]] for r in rows]
    return features, truncated


def _encode_tokens(rows, tokenizer, max_length, label2id):
    words = [r["tokens"] for r in rows]
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    features = {k: enc[k] for k in enc.keys()}
    all_labels, all_word_ids, truncated = [], [], 0
    for i, row in enumerate(rows):
        word_ids = enc.word_ids(i)
        all_word_ids.append([-1 if w is None else w for w in word_ids])
        seen_words = [w for w in word_ids if w is not None]
        if not seen_words or max(seen_words) < len(row["tokens"]) - 1:
            truncated += 1
        labels, previous = [], None
        for w in word_ids:
            if w is None or w == previous:
                labels.append(IGNORE)
            else:
                labels.append(label2id[row["tags"][w]] if "tags" in row else IGNORE)
            previous = w
        all_labels.append(labels)
    if rows and "tags" in rows[0]:
        features["labels"] = all_labels
    features["word_ids"] = all_word_ids  # -1 = special token; the Trainer drops this column, predict uses it
    return features, truncated


def encode_rows(rows: list[dict], task: str, tokenizer, max_length: int, label2id: dict, regression: bool):
    """Tokenize one split. Returns (Dataset, number of truncated examples)."""
    if not getattr(tokenizer, "is_fast", False):
        raise DistilkitError(
            f"tokenizer {type(tokenizer).__name__} is not a fast (Rust) tokenizer; distilkit needs one for "
            "word alignment and truncation counts — save the model with a tokenizer.json"
        )
    if task == TOK:
        features, truncated = _encode_tokens(rows, tokenizer, max_length, label2id)
    else:
        features, truncated = _encode_sequences(rows, tokenizer, max_length, label2id, regression)
    return datasets.Dataset.from_dict(features), truncated


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
