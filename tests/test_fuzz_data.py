"""Fuzzing the data layer: mutated CSV / TSV / JSONL / CoNLL files go through the code the CLI runs
(`load_task_data` for finetune and evaluate, then tokenization) and must end in a valid dataset or one
`DistilkitError` line — never another exception.

Mutations: byte flips, truncation, inserted quotes / tabs / newlines / NULs / invalid UTF-8, deleted and
repeated lines, an emptied file, a dropped column, labels and texts of other JSON types. Bounded and
deterministic (derandomize) so the suite stays fast and CI stays stable; raise FUZZ_EXAMPLES to search longer.
"""

import json
import os
import tempfile
from pathlib import Path

import pytest
from conftest import _vocab, ner_sentences, topic_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distilkit.config import DataOptions
from distilkit.data.dataset import SEQ, TOK, TaskData, load_task_data
from distilkit.data.encode import encode_splits
from distilkit.errors import DistilkitError

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 200,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _base_files() -> dict[str, bytes]:
    rows = topic_rows(12)
    rows[1]["text"] = 'a "quoted", comma text'  # CSV must quote this row
    csv_lines = ["text,label"] + ['"{}",{}'.format(r["text"].replace('"', '""'), r["label"]) for r in rows]
    tsv_lines = ["text\tlabel"] + [f"{r['text']}\t{r['label']}" for r in rows]
    jsonl = [json.dumps(r) for r in rows]
    conll = ["-DOCSTART- -X- O", ""]
    for tokens, tags in ner_sentences(8):
        conll += [f"{t} NN {g}" for t, g in zip(tokens, tags)] + [""]
    tok_jsonl = [json.dumps({"tokens": t, "ner_tags": g}) for t, g in ner_sentences(8)]
    return {
        "csv": "\n".join(csv_lines).encode(),
        "tsv": "\n".join(tsv_lines).encode(),
        "jsonl": "\n".join(jsonl).encode(),
        "conll": "\n".join(conll).encode(),
        "tok.jsonl": "\n".join(tok_jsonl).encode(),
    }


BASE = _base_files()
INSERTS = [
    b'"',
    b'""',
    b"\t",
    b"\n",
    b"\r",
    b"\r\n",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xa8",
    b",",
    b" ",
    b"{",
    b"[",
    b"]",
    b"}",
    b":",
    b"NaN",
    b"-DOCSTART-",
    b"\xef\xbb\xbf",
    b"1e999",
    b'"label": 1',
]
MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from(INSERTS)),
    st.tuples(st.just("delete_line"), st.floats(0, 1)),
    st.tuples(st.just("repeat_line"), st.floats(0, 1)),
    st.tuples(st.just("drop_column"), st.floats(0, 1)),
    st.tuples(st.just("empty")),
)
JSON_VALUE = st.one_of(
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=4),
    st.lists(st.integers(0, 2), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


def mutate(data: bytes, mutation: tuple) -> bytes:
    kind, *args = mutation
    at = int(args[0] * len(data)) if args else 0
    lines = data.split(b"\n")
    line = min(int(args[0] * len(lines)), len(lines) - 1) if args else 0
    if kind == "flip" and data:
        return data[:at] + bytes([args[1]]) + data[at + 1 :]
    if kind == "truncate":
        return data[:at]
    if kind == "insert":
        return data[:at] + args[1] + data[at:]
    if kind == "delete_line":
        return b"\n".join(lines[:line] + lines[line + 1 :])
    if kind == "repeat_line":
        return b"\n".join(lines[: line + 1] + lines[line:])
    if kind == "drop_column":  # cut the line at its last separator: a row (or the header) loses a column
        cut = max(lines[line].rfind(b","), lines[line].rfind(b"\t"), lines[line].rfind(b" "))
        lines[line] = lines[line][:cut] if cut >= 0 else b""
        return b"\n".join(lines)
    return b"" if kind == "empty" else data


def check_task_data(data: TaskData, for_training: bool) -> None:
    """What the rest of distilkit relies on after load_task_data returned."""
    assert data.task in (SEQ, TOK) and data.splits
    labels = set(data.labels)
    if for_training:
        assert "train" in data.splits and (data.regression or len(data.labels) >= 2)
    for rows in data.splits.values():
        assert rows
        for r in rows:
            if data.task == TOK:
                assert r["tokens"] and all(isinstance(t, str) for t in r["tokens"])
                assert len(r["tags"]) == len(r["tokens"])
                assert not for_training or set(r["tags"]) <= labels
            else:
                assert isinstance(r["text"], str) and r["text"].strip()
                if data.regression:
                    assert isinstance(r["label"], float)
                elif for_training:
                    assert r["label"] in labels


def load(path: Path, fmt: str, for_training: bool, regression=None) -> TaskData | None:
    """The CLI's data step; None when it ended in a (one-line) DistilkitError."""
    try:
        data = load_task_data(
            DataOptions(data=str(path), format=fmt, regression=regression), seed=0, for_training=for_training
        )
    except DistilkitError as err:
        message = str(err)
        assert message and "\n" not in message and "\r" not in message, message
        return None
    check_task_data(data, for_training)
    return data


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer, BertTokenizerFast

    folder = tmp_path_factory.mktemp("fuzz-tok")
    BertTokenizerFast(vocab={w: i for i, w in enumerate(_vocab())}, do_lower_case=True).save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


FILES = {"csv": "data.csv", "tsv": "data.tsv", "jsonl": "data.jsonl", "conll": "data.conll", "tok.jsonl": "tok.jsonl"}


@FUZZ
@given(
    base=st.sampled_from(sorted(BASE)),
    mutations=st.lists(MUTATION, min_size=1, max_size=4),
    fmt=st.sampled_from(["auto", "auto", "auto", "csv", "tsv", "jsonl", "conll"]),
    for_training=st.booleans(),
)
def test_mutated_files_load_or_fail_cleanly(base, mutations, fmt, for_training):
    content = BASE[base]
    for m in mutations:
        content = mutate(content, m)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / FILES[base]
        path.write_bytes(content)
        load(path, fmt, for_training)


@FUZZ
@given(
    labels=st.lists(st.tuples(st.integers(0, 11), JSON_VALUE), min_size=1, max_size=3),
    texts=st.lists(st.tuples(st.integers(0, 11), JSON_VALUE), max_size=2),
    drop=st.lists(st.tuples(st.integers(0, 11), st.sampled_from(["text", "label"])), max_size=1),
    regression=st.sampled_from([None, None, True, False]),
    for_training=st.booleans(),
)
def test_jsonl_values_of_any_type(labels, texts, drop, regression, for_training):
    rows = topic_rows(12)
    for i, value in labels:
        rows[i]["label"] = value
    for i, value in texts:
        rows[i]["text"] = value
    for i, key in drop:
        rows[i].pop(key)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "values.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        load(path, "auto", for_training, regression)


@FUZZ
@given(
    numbers=st.lists(
        st.one_of(
            st.integers(-5, 5).map(str),
            st.floats(-2, 2).map(lambda f: f"{f:.2f}"),
            st.sampled_from(["nan", "inf", "n/a", "1e999", "0x1", "1_0", " 2 ", "pos"]),
        ),
        min_size=4,
        max_size=12,
    )
)
def test_csv_numeric_labels(numbers):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "num.csv"
        path.write_text("text,label\n" + "".join(f"text {i},{n}\n" for i, n in enumerate(numbers)))
        load(path, "auto", True)


@settings(
    max_examples=max(10, EXAMPLES // 4),
    deadline=None,
    derandomize=EXAMPLES <= 200,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(base=st.sampled_from(sorted(BASE)), mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_files_tokenize(tokenizer, base, mutations):
    """Whatever loads must also tokenize (the next step of finetune), label ids included."""
    content = BASE[base]
    for m in mutations:
        content = mutate(content, m)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / FILES[base]
        path.write_bytes(content)
        data = load(path, "auto", True)
        if data is not None:
            encoded, _ = encode_splits(data, tokenizer, 16)
            assert {s: len(ds) for s, ds in encoded.items()} == {s: len(r) for s, r in data.splits.items()}
