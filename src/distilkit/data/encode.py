"""Tokenization: `TaskData` rows → `datasets.Dataset`s of input ids and labels, plus dynamic-padding collators.

Sequence classification: label ids (or floats for regression) in `labels`. Token classification: each word's
tag goes to its first word-piece, the other pieces and special tokens get -100 (ignored by the loss and the
metrics). Examples longer than `max_length` are truncated and counted, so the user learns how much was cut.
"""

from __future__ import annotations

import sys

import datasets
from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

from distilkit.data.columns import is_column_rows, scratch_file
from distilkit.data.dataset import TOK, TaskData
from distilkit.errors import DistilkitError

IGNORE = -100
UNK_SAMPLE_ROWS = 200  # rows spread over the split; enough to tell "most words are unknown" from a few
UNK_WORDS_PER_ROW = 64
UNK_WARN_SHARE = 0.5


def unknown_word_share(rows: list[dict], task: str, tokenizer) -> tuple[float, int]:
    """(share of words that the tokenizer maps, wholly or in part, to its unknown token, words sampled).

    A word counts as unknown when one of its pieces is the unknown token: WordPiece turns a word it cannot
    spell into a single [UNK], SentencePiece replaces the characters it lacks.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or not rows:
        return 0.0, 0  # byte-level BPE (RoBERTa, GPT-2) has no unknown token
    sample = rows[:: max(1, len(rows) // UNK_SAMPLE_ROWS)][:UNK_SAMPLE_ROWS]
    if task == TOK:
        words = [[str(w) for w in r.get("tokens") or [] if str(w).strip()][:UNK_WORDS_PER_ROW] for r in sample]
    else:
        words = [f"{r.get('text') or ''} {r.get('text_pair') or ''}".split()[:UNK_WORDS_PER_ROW] for r in sample]
    words = [w for w in words if w]
    if not words:
        return 0.0, 0
    enc = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
    total = unknown = 0
    for i, ids in enumerate(enc["input_ids"]):
        seen, bad = set(), set()
        for w, token in zip(enc.word_ids(i), ids):
            if w is None:
                continue
            seen.add(w)
            if token == unk:
                bad.add(w)
        total, unknown = total + len(seen), unknown + len(bad)
    return (unknown / total if total else 0.0), total


def warn_unknown_words(rows: list[dict], task: str, tokenizer, what: str = "the data") -> float:
    """Print one loud line when most words become the unknown token: the model would train to chance."""
    share, sampled = unknown_word_share(rows, task, tokenizer)
    if share > UNK_WARN_SHARE:
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        print(
            f"WARNING: {100 * share:.0f}% of the words of {what} ({sampled} sampled) become the unknown token "
            f"{tokenizer.unk_token} with the tokenizer of {name}; the model cannot learn from them — its "
            "vocabulary probably does not fit this language or casing (pick a model for this language, or a "
            "cased/uncased one to match the text)",
            file=sys.stderr,
            flush=True,
        )
    return share


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


def encode_rows(
    rows: list[dict],
    task: str,
    tokenizer,
    max_length: int,
    label2id: dict,
    regression: bool,
    what: str = "the data",
    check_unknown: bool = True,
):
    """Tokenize one split with `datasets.map(batched=True)`. Returns (Dataset, number of truncated examples).

    The result keeps `word_ids` for token classification (the Trainer drops it: the model does not take it;
    `predict` uses it to map word-pieces back to words).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise DistilkitError(
            f"tokenizer {type(tokenizer).__name__} is not a fast (Rust) tokenizer; distilkit needs one for "
            "word alignment and truncation counts — save the model with a tokenizer.json"
        )
    if check_unknown:
        warn_unknown_words(rows, task, tokenizer, what)
    columns = [c for c in rows[0] if not c.startswith("_")] if len(rows) else []
    if is_column_rows(rows):  # from an Arrow table: mapped into a temporary Arrow file, never into memory
        raw = rows.to_dataset(columns)
    else:
        raw = datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in columns})
    on_disk = bool(raw.cache_files)
    if task == TOK:
        fn, kwargs = _token_batch, dict(tokenizer=tokenizer, max_length=max_length, label2id=label2id)
    else:
        fn = _sequence_batch
        kwargs = dict(tokenizer=tokenizer, max_length=max_length, label2id=label2id, regression=regression)
    encoded = raw.map(
        fn,
        batched=True,
        batch_size=1000,
        fn_kwargs=kwargs,
        remove_columns=columns,
        desc="tokenizing",
        load_from_cache_file=False,
        cache_file_name=scratch_file("tokens") if on_disk else None,
        keep_in_memory=not on_disk,
    )
    truncated = int(sum(encoded["truncated"])) if len(encoded) else 0
    return encoded.remove_columns("truncated"), truncated


def encode_splits(data: TaskData, tokenizer, max_length: int, label2id: dict | None = None):
    """Tokenize every split. Returns ({split: Dataset}, {split: truncated count})."""
    label2id = label2id if label2id is not None else {name: i for i, name in enumerate(data.labels)}
    encoded, truncated = {}, {}
    checked = "train" if "train" in data.splits else next(iter(data.splits), None)  # one warning, not one per split
    for split, rows in data.splits.items():
        encoded[split], truncated[split] = encode_rows(
            rows,
            data.task,
            tokenizer,
            max_length,
            label2id,
            data.regression,
            what=f"the {split} split of {data.name}",
            check_unknown=split == checked,
        )
    return encoded, truncated


def collator_for(task: str, tokenizer):
    """Dynamic padding: each batch is padded to its own longest example (labels padded with -100)."""
    if task == TOK:
        return DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORE)
    return DataCollatorWithPadding(tokenizer)
