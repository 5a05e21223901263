"""File formats and the bad-input errors of the readers (each names the file and line)."""

import json

import pytest
from conftest import ner_sentences, topic_rows, write_conll, write_csv, write_jsonl

from distilkit.config import DataOptions
from distilkit.data.dataset import TOK, load_task_data
from distilkit.data.readers import detect_format, read_conll, read_delimited, read_jsonl, read_text
from distilkit.errors import DistilkitError


def test_csv_tsv_jsonl_read_the_same_rows(tmp_path):
    rows = topic_rows(9)
    loaded = [
        read_delimited(write_csv(tmp_path / "a.csv", rows), ","),
        read_delimited(write_csv(tmp_path / "a.tsv", rows, delimiter="\t"), "\t"),
        read_jsonl(write_jsonl(tmp_path / "a.jsonl", rows)),
    ]
    for got in loaded:
        assert [{k: v for k, v in r.items() if k != "_where"} for r in got] == rows
    assert loaded[0][0]["_where"].endswith("a.csv:2")  # line 1 is the header


def test_tsv_keeps_quotes_like_glue(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text('sentence\tlabel\nit \'s a "great" film\t1\n', encoding="utf-8")
    assert read_delimited(path, "\t")[0]["sentence"] == 'it \'s a "great" film'


def test_conll_skips_docstart_and_splits_sentences(tmp_path):
    sents = ner_sentences(5)
    rows = read_conll(write_conll(tmp_path / "x.conll", sents, docstart=True))
    assert [(r["tokens"], r["tags"]) for r in rows] == sents
    assert all("-DOCSTART-" not in r["tokens"] for r in rows)


def test_format_detection(tmp_path):
    assert detect_format(tmp_path / "a.tsv", "auto") == "tsv"
    assert detect_format(tmp_path / "a.jsonl", "auto") == "jsonl"
    assert detect_format(tmp_path / "a.conll", "auto") == "conll"
    assert detect_format(tmp_path / "a.xyz", "csv") == "csv"
    with pytest.raises(DistilkitError, match="--format"):
        detect_format(tmp_path / "a.xyz", "auto")


def test_save_to_disk_folder_with_classlabels(tmp_path):
    import datasets

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["food", "music", "sport"])}
    )
    rows = topic_rows(30)
    ds = datasets.Dataset.from_dict(
        {"text": [r["text"] for r in rows], "label": [["food", "music", "sport"].index(r["label"]) for r in rows]},
        features=features,
    )
    datasets.DatasetDict({"train": ds, "validation": ds.select(range(6))}).save_to_disk(str(tmp_path / "ds"))
    data = load_task_data(DataOptions(data=str(tmp_path / "ds"), split="0.9,0,0.1"), seed=1)
    assert set(data.splits) == {"train", "dev", "test"}
    assert data.labels == ["food", "music", "sport"]
    assert data.splits["dev"][0]["label"] in data.labels


def test_folder_of_split_files_and_token_jsonl(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    sents = ner_sentences(30)
    write_jsonl(folder / "train.jsonl", [{"tokens": t, "ner_tags": g} for t, g in sents[:20]])
    write_jsonl(folder / "validation.jsonl", [{"tokens": t, "ner_tags": g} for t, g in sents[20:]])
    data = load_task_data(DataOptions(data=str(folder), split="0.8,0.2,0"), seed=0)
    assert data.task == TOK and data.is_bio
    assert len(data.splits["dev"]) == 10 and "test" not in data.splits


# ---- bad input: one clear error naming the file/line and the fix ----


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DistilkitError, match=r"nope\.csv: data file not found"):
        read_text(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("  \n")
    with pytest.raises(DistilkitError, match="empty"):
        read_text(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("text,label\n")
    with pytest.raises(DistilkitError, match="no rows"):
        read_delimited(tmp_path / "header.csv", ",")


def test_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\nok,a\ncaf\xe9 au lait,b\n".encode("latin-1"))
    with pytest.raises(DistilkitError, match=r"latin\.csv:3: byte 0xe9 is not valid UTF-8.*iconv"):
        read_text(path)


def test_malformed_conll_line(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("alice B-PER\nvisited O\nparis\n\n")
    with pytest.raises(DistilkitError, match=r"bad\.conll:3: malformed CoNLL line 'paris'"):
        read_conll(path)


def test_invalid_jsonl_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "a", "label": "x"}) + "\n{not json\n")
    with pytest.raises(DistilkitError, match=r"bad\.jsonl:2: invalid JSON"):
        read_jsonl(path)


def test_csv_with_extra_fields(tmp_path):
    path = tmp_path / "extra.csv"
    path.write_text("text,label\nhello, world,a\n")
    with pytest.raises(DistilkitError, match=r"extra\.csv:2: row has 3 fields but the header has 2"):
        read_delimited(path, ",")
