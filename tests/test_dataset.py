"""Task data: columns, label maps, splits, regression, built-in datasets, and the data errors."""

import pytest
from conftest import topic_rows, write_csv, write_jsonl

from distilkit.config import DataOptions
from distilkit.data import builtin
from distilkit.data.dataset import SEQ, TOK, load_task_data
from distilkit.errors import DistilkitError


def test_seeded_stratified_split(topic_csv):
    a = load_task_data(DataOptions(data=str(topic_csv), split="0.6,0.2,0.2"), seed=3)
    b = load_task_data(DataOptions(data=str(topic_csv), split="0.6,0.2,0.2"), seed=3)
    assert [len(a.splits[s]) for s in ("train", "dev", "test")] == [36, 12, 12]
    assert [r["text"] for r in a.splits["test"]] == [r["text"] for r in b.splits["test"]]
    for split in ("dev", "test"):  # stratified: every class equally represented
        labels = [r["label"] for r in a.splits[split]]
        assert sorted(labels.count(c) for c in set(labels)) == [4, 4, 4]
    assert a.labels == ["food", "music", "sport"]
    c = load_task_data(DataOptions(data=str(topic_csv), split="0.6,0.2,0.2"), seed=4)
    assert [r["text"] for r in c.splits["test"]] != [r["text"] for r in a.splits["test"]]


def test_bad_split_spec(topic_csv):
    with pytest.raises(DistilkitError, match="--split '0.5,0.1'"):
        load_task_data(DataOptions(data=str(topic_csv), split="0.5,0.1"))


def test_pairs_and_numeric_class_labels(tmp_path):
    rows = [{"text_a": f"a{i}", "text_b": f"b{i}", "label": i % 2} for i in range(20)]
    data = load_task_data(DataOptions(data=str(write_jsonl(tmp_path / "p.jsonl", rows))), seed=0)
    assert data.is_pair and not data.regression and data.labels == ["0", "1"]
    assert set(data.splits["train"][0]) >= {"text", "text_pair", "label"}


def test_regression_detected_from_fractional_numbers(tmp_path):
    rows = [{"text": f"t{i}", "label": f"{i / 7:.3f}"} for i in range(20)]
    data = load_task_data(DataOptions(data=str(write_csv(tmp_path / "r.csv", rows))), seed=0)
    assert data.regression and data.labels == [] and isinstance(data.splits["train"][0]["label"], float)
    int_rows = [{"text": f"t{i}", "label": str(i % 5)} for i in range(20)]
    path = write_csv(tmp_path / "r2.csv", int_rows)
    assert not load_task_data(DataOptions(data=str(path)), seed=0).regression  # integers: classes by default
    assert load_task_data(DataOptions(data=str(path), regression=True), seed=0).regression
    with pytest.raises(DistilkitError, match="is not a number, but --regression is on"):
        load_task_data(DataOptions(data=str(write_csv(tmp_path / "r3.csv", topic_rows(6))), regression=True))


def test_custom_column_names(tmp_path):
    rows = [{"sentence": r["text"], "topic": r["label"]} for r in topic_rows(12)]
    path = write_csv(tmp_path / "c.csv", rows)
    data = load_task_data(DataOptions(data=str(path), text_column="sentence", label_column="topic"), seed=0)
    assert data.task == SEQ and len(data.labels) == 3


def test_missing_column_names_the_columns_found(tmp_path):
    path = write_csv(tmp_path / "c.csv", [{"sentence": "x", "label": "a"}, {"sentence": "y", "label": "b"}])
    with pytest.raises(
        DistilkitError,
        match=r"c\.csv: no column 'text'; columns found: sentence, label; "
        r"pass --text-column",
    ):
        load_task_data(DataOptions(data=str(path)))


def test_empty_text_row(tmp_path):
    rows = topic_rows(6)
    rows[3]["text"] = "   "
    path = write_csv(tmp_path / "e.csv", rows)
    with pytest.raises(DistilkitError, match=r"e\.csv:5: empty text in column 'text'"):
        load_task_data(DataOptions(data=str(path)))


def test_single_class(tmp_path):
    rows = [{"text": f"t {i}", "label": "pos"} for i in range(10)]
    path = write_csv(tmp_path / "one.csv", rows)
    with pytest.raises(DistilkitError, match=r"one\.csv: training data has a single class 'pos'"):
        load_task_data(DataOptions(data=str(path)))


def test_unseen_dev_label(tmp_path):
    train = write_csv(tmp_path / "train.csv", topic_rows(12))
    dev_rows = topic_rows(3)
    dev_rows[1]["label"] = "politics"
    dev = write_csv(tmp_path / "dev.csv", dev_rows)
    with pytest.raises(DistilkitError, match=r"dev\.csv:3: dev label 'politics' never occurs in the training data"):
        load_task_data(DataOptions(train_file=str(train), dev_file=str(dev)))


def test_no_data_and_unknown_name():
    with pytest.raises(DistilkitError, match="no data given"):
        load_task_data(DataOptions())
    with pytest.raises(DistilkitError, match="not a built-in dataset"):
        load_task_data(DataOptions(data="sst-17"))


def test_bbc_news_builtin():
    splits = builtin.load("bbc-news")
    sizes = {s: len(r) for s, r in splits.items()}
    assert sum(sizes.values()) < 2225  # duplicates removed
    assert sum(sizes.values()) > 2100
    assert {r["label"] for r in splits["test"]} == {"business", "entertainment", "politics", "sport", "tech"}
    texts = [r["text"] for rows in splits.values() for r in rows]
    assert len(texts) == len(set(texts))  # no duplicate across splits
    again = builtin.load("bbc-news")
    assert [r["text"] for r in again["test"]] == [r["text"] for r in splits["test"]]


def test_brown_pos_builtin():
    data = load_task_data(DataOptions(data="brown-pos"))
    assert data.task == TOK and not data.is_bio
    assert sum(len(r) for r in data.splits.values()) == 57340
    assert set(data.labels) == {"NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "NUM", "CONJ", "PRT", ".", "X"}
