"""Tokenization (label alignment, truncation counts, padding) and metrics against hand computations."""

import numpy as np
import pytest

from distilkit.data.dataset import SEQ, TOK
from distilkit.data.encode import IGNORE, collator_for, encode_rows
from distilkit.evaluation.metrics import classification_metrics, regression_metrics, task_metrics, token_metrics


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_token_labels_go_to_the_first_word_piece(tokenizer):
    rows = [{"tokens": ["alice", "xyzzy", "paris"], "tags": ["B-PER", "O", "B-LOC"]}]
    ds, truncated = encode_rows(rows, TOK, tokenizer, 32, {"O": 0, "B-PER": 1, "B-LOC": 2}, False)
    labels, word_ids = ds[0]["labels"], ds[0]["word_ids"]
    assert truncated == 0
    # "xyzzy" is not in the vocab: it splits into several pieces; only the first carries the tag
    pieces_of_word1 = [i for i, w in enumerate(word_ids) if w == 1]
    assert len(pieces_of_word1) > 1
    assert labels[pieces_of_word1[0]] == 0 and all(labels[i] == IGNORE for i in pieces_of_word1[1:])
    assert [labels[i] for i, w in enumerate(word_ids) if w == 0] == [1]
    assert labels[0] == IGNORE and labels[-1] == IGNORE  # [CLS], [SEP]


def test_truncation_is_counted(tokenizer):
    rows = [{"text": "the goal " * 40, "label": "a"}, {"text": "the goal", "label": "b"}]
    ds, truncated = encode_rows(rows, SEQ, tokenizer, 16, {"a": 0, "b": 1}, False)
    assert truncated == 1 and len(ds[0]["input_ids"]) == 16 and ds["labels"] == [0, 1]
    tok_rows = [{"tokens": ["the"] * 40, "tags": ["DET"] * 40}, {"tokens": ["the"], "tags": ["DET"]}]
    _, truncated = encode_rows(tok_rows, TOK, tokenizer, 16, {"DET": 0}, False)
    assert truncated == 1


def test_dynamic_padding_pads_to_the_longest_in_batch(tokenizer):
    rows = [{"text": "the goal", "label": "a"}, {"text": "the goal was very big today", "label": "b"}]
    ds, _ = encode_rows(rows, SEQ, tokenizer, 64, {"a": 0, "b": 1}, False)
    batch = collator_for(SEQ, tokenizer)([ds[0], ds[1]])
    assert batch["input_ids"].shape == (2, len(ds[1]["input_ids"]))
    assert batch["attention_mask"][0].sum() == len(ds[0]["input_ids"])


def test_classification_metrics_by_hand():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    # per class: a P=1/2 R=1/2; b P=2/3 R=1; c P=1 R=1/2
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["c"]["recall"] == pytest.approx(0.5)
    f1 = [0.5, 0.8, 2 / 3]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert m["micro_f1"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_regression_metrics_by_hand():
    m = regression_metrics([1.0, 2.0, 3.0], [1.5, 2.0, 2.0])
    assert m["mse"] == pytest.approx((0.25 + 0 + 1) / 3)
    assert m["mae"] == pytest.approx(0.5)
    assert -1 <= m["pearson"] <= 1


def test_bio_tags_get_entity_level_scores():
    true = [["B-PER", "O", "B-LOC", "I-LOC"]]
    pred = [["B-PER", "O", "B-LOC", "O"]]  # the LOC span is cut short: a wrong entity
    m = token_metrics(true, pred, ["O", "B-PER", "B-LOC", "I-LOC"], bio=True)
    assert m["token_accuracy"] == pytest.approx(3 / 4)
    assert m["entity"]["precision"] == pytest.approx(0.5) and m["entity"]["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.5)
    pos = token_metrics([["DET", "NOUN"]], [["DET", "VERB"]], ["DET", "NOUN", "VERB"], bio=False)
    assert "entity" not in pos and pos["accuracy"] == 0.5


def test_token_metrics_ignore_padding_and_later_pieces():
    preds = np.array([[5, 1, 2, 0, 0]])
    labels = np.array([[IGNORE, 1, IGNORE, 0, IGNORE]])
    m = task_metrics(TOK, False, ["O", "B-PER", "B-LOC"], preds, labels, bio=True)
    assert m["examples"] == 2 and m["accuracy"] == 1.0
