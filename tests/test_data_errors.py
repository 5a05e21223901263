"""Bad data that the user can fix: each case ends in one DistilkitError line naming the file, the line and the
fix, or in a loud one-line note — never a traceback, a silent extra class or an error at the wrong line."""

import csv
import gzip
import json
from types import SimpleNamespace

import pytest
from conftest import _vocab, ner_sentences, topic_rows, write_csv, write_jsonl

from distilkit.config import DataOptions, DistillConfig
from distilkit.data.dataset import SEQ, TOK, check_known_labels, load_task_data
from distilkit.data.encode import encode_splits
from distilkit.data.readers import read_conll, read_delimited, read_jsonl
from distilkit.errors import DistilkitError


def one_line_error(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(DistilkitError, match=match) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    return message


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """The tiny English WordPiece tokenizer of the test model (no model weights needed)."""
    from transformers import AutoTokenizer, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tok") / "tiny-english"
    BertTokenizerFast(vocab={w: i for i, w in enumerate(_vocab())}, do_lower_case=True).save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


# ---- mixed label types in JSONL ----


def test_integer_label_among_text_labels_is_an_error(tmp_path):
    rows = topic_rows(12)
    rows[3]["label"] = 1  # line 4: a JSON number among "sport"/"music"/"food"
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    message = one_line_error(
        r"mixed\.jsonl:4: label 1 is a number but most labels are text \(.*mixed\.jsonl:1: "
        r"'sport'\)",
        load_task_data,
        DataOptions(data=str(path)),
    )
    assert "class of its own" in message
    # the same file is also refused when only evaluated (no label map is built then)
    one_line_error(r"mixed\.jsonl:4", load_task_data, DataOptions(data=str(path)), for_training=False)


def test_other_mixed_and_non_scalar_labels(tmp_path):
    rows = [{"text": f"t {i}", "label": i % 3} for i in range(12)]
    rows[7]["label"] = True
    one_line_error(
        r"b\.jsonl:8: label true is true/false but most labels are numbers",
        load_task_data,
        DataOptions(data=str(write_jsonl(tmp_path / "b.jsonl", rows))),
    )
    rows[7]["label"] = ["pos"]
    one_line_error(
        r"l\.jsonl:8: label in column 'label' is a JSON list",
        load_task_data,
        DataOptions(data=str(write_jsonl(tmp_path / "l.jsonl", rows))),
    )
    sents = [{"tokens": t, "tags": g} for t, g in ner_sentences(6)]
    sents[4]["tags"] = [0] + sents[4]["tags"][1:]
    one_line_error(
        r"t\.jsonl:5: tag 0 is a number but most tags are text",
        load_task_data,
        DataOptions(data=str(write_jsonl(tmp_path / "t.jsonl", sents))),
    )


def test_consistent_json_types_still_work(tmp_path):
    ints = [{"tokens": t, "ner_tags": [i % 3 for i in range(len(t))]} for t, _ in ner_sentences(20)]
    data = load_task_data(DataOptions(data=str(write_jsonl(tmp_path / "i.jsonl", ints))), seed=0)
    assert data.task == TOK and data.labels == ["0", "1", "2"]
    same = [{"text": f"t {i}", "label": i % 2 if i % 3 else str(i % 2)} for i in range(20)]  # 1 and "1": one class
    assert load_task_data(DataOptions(data=str(write_jsonl(tmp_path / "s.jsonl", same))), seed=0).labels == ["0", "1"]


# ---- regression: said out loud, and never silently undone by a stray text label ----


def test_regression_prints_the_line_that_made_it(tmp_path, capsys):
    rows = [{"text": f"t {i}", "label": str(i % 5)} for i in range(30)]
    rows[15]["label"] = "0.35"  # line 17 of the file (header is line 1)
    data = load_task_data(DataOptions(data=str(write_csv(tmp_path / "r.csv", rows))), seed=0)
    assert data.regression
    out = capsys.readouterr().out
    assert "regression: the labels are numbers, not all integers (" in out
    assert "r.csv:17: 0.35); pass --regression false to treat them as classes" in out
    assert not load_task_data(DataOptions(data=str(tmp_path / "r.csv"), regression=False), seed=0).regression


def test_text_label_among_fractional_numbers_is_an_error(tmp_path):
    rows = [{"text": f"t {i}", "label": f"{i / 7:.2f}"} for i in range(20)]
    rows[9]["label"] = "n/a"
    path = write_csv(tmp_path / "na.csv", rows)
    one_line_error(
        r"na\.csv:11: label 'n/a' is not a number, but the other labels are numbers.*"
        r"--regression false",
        load_task_data,
        DataOptions(data=str(path)),
    )


# ---- CSV quotes and long fields ----


def test_unbalanced_quote_is_reported_where_it_opens(tmp_path):
    lines = ["text,label"] + [f"row {i},{'ab'[i % 2]}" for i in range(20)]
    lines[3] = '"an unclosed quote,a'  # line 4
    path = tmp_path / "q.csv"
    path.write_text("\n".join(lines) + "\n")
    one_line_error(r"q\.csv:4: unbalanced quote", read_delimited, path, ",")
    one_line_error(r"q\.csv:4: unbalanced quote", load_task_data, DataOptions(data=str(path)))  # as the CLI reads
    lines[12] = 'later a "quoted" word,b'  # a later quote closes the field, then text follows: csv stops at 13
    path.write_text("\n".join(lines) + "\n")
    one_line_error(r"q\.csv:4: unbalanced quote", read_delimited, path, ",")


def test_multiline_quoted_field_keeps_its_first_line(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('text,label\n"two\nlines",a\nnext,b\n"x ""y"", z",a\n')
    rows = read_delimited(path, ",")
    assert [r["_where"].rsplit(":", 1)[1] for r in rows] == ["2", "4", "5"]
    assert rows[0]["text"] == "two\nlines" and rows[2]["text"] == 'x "y", z'


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_one_megabyte_field_is_not_malformed(tmp_path, delimiter):
    big = "word " * 220_000  # 1.1 MB
    path = tmp_path / ("big.tsv" if delimiter == "\t" else "big.csv")
    path.write_text(f"text{delimiter}label\nsmall{delimiter}a\n{big}{delimiter}b\nafter{delimiter}a\n")
    rows = read_delimited(path, delimiter)
    assert len(rows) == 3 and rows[1]["text"] == big and rows[1]["_where"].endswith(":3")


# ---- tokenizer that does not fit the data ----


def test_mostly_unknown_words_warn_once(tmp_path, tokenizer, capsys):
    words = ["привет", "мир", "книга", "дом", "вода", "солнце"]
    rows = [{"text": " ".join(words[(i + k) % 6] for k in range(4)) + " the", "label": "ab"[i % 2]} for i in range(40)]
    data = load_task_data(DataOptions(data=str(write_csv(tmp_path / "ru.csv", rows))), seed=0)
    encode_splits(data, tokenizer, 32)
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, err  # once for the training set, not once per split
    assert "80% of the words of the train split of ru.csv" in warnings[0]
    assert "unknown token [UNK]" in warnings[0] and "tiny-english" in warnings[0]
    assert "language or casing" in warnings[0]


def test_known_words_do_not_warn(tmp_path, tokenizer, capsys):
    data = load_task_data(DataOptions(data=str(write_csv(tmp_path / "en.csv", topic_rows(30)))), seed=0)
    encode_splits(data, tokenizer, 32)
    assert "WARNING" not in capsys.readouterr().err


# ---- a model whose labels do not fit the data ----


def test_regression_model_on_text_labels(tmp_path):
    from distilkit.evaluation.evaluate import splits_rows_for

    trained = SimpleNamespace(task=SEQ, regression=True, labels=[], path="runs/sts/model")
    path = write_csv(tmp_path / "topics.csv", topic_rows(9))
    one_line_error(
        r"topics\.csv:2: label 'sport' is not a number, but the task is regression",
        splits_rows_for,
        trained,
        DataOptions(data=str(path)),
        ["test"],
    )


def test_model_without_label_names(tmp_path):
    from distilkit.evaluation.evaluate import splits_rows_for

    trained = SimpleNamespace(task=SEQ, regression=False, labels=[], path="model.onnx")
    path = write_csv(tmp_path / "topics.csv", topic_rows(9))
    message = one_line_error(
        r"topics\.csv:2: test label 'sport' cannot be matched: the model has no label names",
        splits_rows_for,
        trained,
        DataOptions(data=str(path)),
        ["test"],
    )
    assert "known: )" not in message


def test_teacher_label_mismatch_lists_the_labels_on_one_line(tmp_path):
    from distilkit.distillation.setup import prepare_data as _prepare_data

    teacher = SimpleNamespace(task=SEQ, regression=False, labels=["neg", "pos\nx", " padded"], path="t")
    path = write_csv(tmp_path / "topics.csv", topic_rows(12))
    one_line_error(
        r"train label '\w+' is not one of the model's labels \(neg, 'pos\\nx', ' padded'\); use data",
        _prepare_data,
        DistillConfig(data=str(path)),
        teacher,
    )
    regression_teacher = SimpleNamespace(task=SEQ, regression=True, labels=[], path="t")
    one_line_error(
        r"label '\w+' is not a number, but the task is regression",
        _prepare_data,
        DistillConfig(data=str(path)),
        regression_teacher,
    )
    assert check_known_labels(SEQ, [{"label": "a", "_where": "f:2"}], ["a", "b"], "dev") is None


# ---- what the fuzz tests found ----


def test_json_list_of_non_objects_and_empty_list(tmp_path):
    path = tmp_path / "list.json"
    path.write_text('[{"text": "a", "label": "x"}, 3]')
    one_line_error(r"list\.json: item 2 of the JSON list is a int, expected an object", read_jsonl, path)
    path.write_text("[]")
    one_line_error(r"list\.json: no JSON objects", load_task_data, DataOptions(data=str(path)))


def test_json_strings_may_hold_line_separators(tmp_path):
    rows = [{"text": f"line\u2028sep\x0cform {i}", "label": "ab"[i % 2]} for i in range(6)]
    path = tmp_path / "sep.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "{oops\n", encoding="utf-8")
    one_line_error(r"sep\.jsonl:7: invalid JSON", read_jsonl, path)  # line 7 as an editor counts, not 19
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert [r["text"] for r in read_jsonl(path)] == [r["text"] for r in rows]


def test_nul_bytes_and_utf16(tmp_path):
    path = tmp_path / "u16.csv"
    path.write_bytes("text,label\nhello,a\n".encode("utf-16-le"))  # no BOM: "valid" UTF-8 full of NULs
    one_line_error(r"u16\.csv:1: the file contains a NUL byte \(UTF-16 or binary\?\)", read_delimited, path, ",")
    conll = tmp_path / "nul.conll"
    conll.write_bytes(b"alice B-PER\n\nbob\x00 B-PER\n")
    one_line_error(r"nul\.conll:3: the file contains a NUL byte", read_conll, conll)


def test_truncated_gzip(tmp_path):
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"text": "a", "label": "x"}\n' * 50)[:40])
    one_line_error(r"t\.jsonl\.gz: cannot read the file", read_jsonl, path)


def test_duplicate_header_column(tmp_path):
    path = tmp_path / "dup.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["text", "label", "text"], ["a", "x", "b"]])
    one_line_error(r"dup\.csv:1: the header names column 'text' twice", read_delimited, path, ",")


def test_list_as_text_and_nan_label(tmp_path):
    rows = topic_rows(6)
    rows[2]["text"] = ["a", "list"]
    one_line_error(
        r"lt\.jsonl:3: column 'text' holds \['a', 'list'\], not a text",
        load_task_data,
        DataOptions(data=str(write_jsonl(tmp_path / "lt.jsonl", rows))),
    )
    path = tmp_path / "nan.jsonl"
    path.write_text(
        "".join(json.dumps({"text": f"t {i}", "label": i / 3}) + "\n" for i in range(5))
        + '{"text": "x", "label": NaN}\n'
    )
    one_line_error(
        r"nan\.jsonl:6: label nan in column 'label' is not a finite number", load_task_data, DataOptions(data=str(path))
    )
