"""Data through `datasets`: Parquet and Arrow files, folders laid out like a Hub dataset repo, save_to_disk
folders and Hub ids (`--data-config`, `--data-revision`) train on the same rows as the same data in CSV."""

import json

import datasets
import pytest
from conftest import FAST, run_cli, topic_rows, write_csv

from distilkit.config import DataOptions
from distilkit.data.dataset import load_task_data
from distilkit.errors import DistilkitError

SPLITS = {"train": topic_rows(120, seed=3), "validation": topic_rows(30, seed=4), "test": topic_rows(30, seed=5)}


def _csv_folder(folder):
    folder.mkdir()
    for split, rows in SPLITS.items():
        write_csv(folder / f"{'dev' if split == 'validation' else split}.csv", rows)
    return folder


def _hub_folder(folder):
    """What `huggingface-cli download --repo-type dataset` leaves: a card and data/<split>-*.parquet."""
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# topics\n")
    for split, rows in SPLITS.items():
        datasets.Dataset.from_list(rows).to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


def _test_accuracy(tiny_model, data, out, capsys):
    code, _, err = run_cli(
        ["finetune", "--model", tiny_model, "--data", data, "--output", out, "--epochs", "2", *FAST], capsys
    )
    assert code == 0, err
    return json.loads((out / "metrics.json").read_text())["test"]["accuracy"]


def test_parquet_hub_folder_and_save_to_disk_train_like_csv(tiny_model, tmp_path, capsys):
    baseline = _test_accuracy(tiny_model, _csv_folder(tmp_path / "csv"), tmp_path / "r-csv", capsys)
    hub_like = _test_accuracy(tiny_model, _hub_folder(tmp_path / "hub"), tmp_path / "r-hub", capsys)
    saved = tmp_path / "saved"
    datasets.DatasetDict({s: datasets.Dataset.from_list(r) for s, r in SPLITS.items()}).save_to_disk(str(saved))
    from_disk = _test_accuracy(tiny_model, saved, tmp_path / "r-disk", capsys)
    assert hub_like == baseline and from_disk == baseline

    one_file = [row for rows in SPLITS.values() for row in rows]  # one file, split by --split as a CSV would be
    write_csv(tmp_path / "all.csv", one_file)
    datasets.Dataset.from_list(one_file).to_parquet(str(tmp_path / "all.parquet"))
    csv_acc = _test_accuracy(tiny_model, tmp_path / "all.csv", tmp_path / "r-all-csv", capsys)
    assert _test_accuracy(tiny_model, tmp_path / "all.parquet", tmp_path / "r-all-pq", capsys) == csv_acc


def test_parquet_and_arrow_files_read_the_rows_of_the_csv(tmp_path):
    rows = topic_rows(40, seed=2)
    write_csv(tmp_path / "t.csv", rows)
    ds = datasets.Dataset.from_list(rows)
    ds.to_parquet(str(tmp_path / "t.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    arrow = next((tmp_path / "saved").glob("*.arrow"))
    loaded = [
        load_task_data(DataOptions(data=str(path), split="0.8,0.1,0.1"), seed=1)
        for path in (tmp_path / "t.csv", tmp_path / "t.parquet", arrow)
    ]
    strip = [{s: [(r["text"], r["label"]) for r in rows] for s, rows in d.splits.items()} for d in loaded]
    assert strip[0] == strip[1] == strip[2]
    assert loaded[1].splits["train"][0]["_where"].startswith(f"{tmp_path / 't.parquet'}[row ")


def test_a_row_of_a_parquet_file_is_named_in_the_error(tmp_path):
    rows = topic_rows(20)
    rows[7]["text"] = ""
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "t.parquet"))
    with pytest.raises(DistilkitError, match=r"t\.parquet\[row 7\]"):
        load_task_data(DataOptions(data=str(tmp_path / "t.parquet")), seed=1)


def test_a_hub_id_is_a_load_dataset_call_with_config_and_revision(monkeypatch):
    calls = []

    def fake_load(source, name=None, revision=None):
        calls.append((source, name, revision))
        return datasets.DatasetDict({s: datasets.Dataset.from_list(r) for s, r in SPLITS.items()})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    data = load_task_data(DataOptions(data="someone/topics", data_config="small", data_revision="v1.0"), seed=1)
    assert calls == [("someone/topics", "small", "v1.0")]
    assert {s: len(r) for s, r in data.splits.items()} == {"train": 120, "dev": 30, "test": 30}
    assert data.splits["dev"][0]["_where"] == "someone/topics[validation][0]"


@pytest.mark.parametrize(
    "raised, needle",
    [
        (
            ValueError("Config name is missing.\nPlease pick one among the available configs: ['cola', 'mrpc']"),
            r"--data someone/glue: Config name is missing\.; pass one with --data-config NAME$",
        ),
        (
            ConnectionError("Couldn't reach 'someone/glue' on the Hub (OfflineModeIsEnabled)"),
            r"not a built-in dataset \(.*\), and as a Hub dataset id it is not in the local HF cache",
        ),
        (
            datasets.exceptions.DatasetNotFoundError("Dataset 'someone/glue' doesn't exist on the Hub"),
            r"no such dataset on the Hub, or it is private or gated",
        ),
    ],
)
def test_what_load_dataset_raises_is_one_line(monkeypatch, raised, needle):
    def fake_load(*args, **kwargs):
        raise raised

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    with pytest.raises(DistilkitError, match=needle):
        load_task_data(DataOptions(data="someone/glue"), seed=1)


def test_an_unknown_name_offline_names_builtins_and_the_cache(tiny_model, tmp_path, capsys):
    code, _, err = run_cli(
        ["finetune", "--model", tiny_model, "--data", "nobody/nothing", "--output", tmp_path / "r"], capsys
    )
    assert code != 0 and err.count("\n") == 1
    assert "--data nobody/nothing: no such file or folder, not a built-in dataset (bbc-news" in err


def test_a_config_for_a_file_and_a_damaged_parquet_are_refused(tmp_path):
    write_csv(tmp_path / "t.csv", topic_rows(10))
    with pytest.raises(DistilkitError, match=r"--data-config mrpc: only a Hub dataset id or Hub-style folder"):
        load_task_data(DataOptions(data=str(tmp_path / "t.csv"), data_config="mrpc"), seed=1)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DistilkitError, match=r"bad\.parquet: cannot read it as parquet \("):
        load_task_data(DataOptions(data=str(tmp_path / "bad.parquet")), seed=1)


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_augment_writes_parquet_and_arrow_back_in_their_format(topic_run, tmp_path, capsys, fmt):
    rows = topic_rows(10)
    ds = datasets.Dataset.from_list(rows)
    if fmt == "parquet":
        source = tmp_path / "in.parquet"
        ds.to_parquet(str(source))
    else:
        ds.save_to_disk(str(tmp_path / "saved"))
        source = next((tmp_path / "saved").glob("*.arrow"))
    out = tmp_path / f"out.{fmt}"
    code, _, err = run_cli(
        ["augment", "--data", source, "--output", out, "--model", topic_run, "--copies", "2"], capsys
    )
    assert code == 0, err
    back = datasets.load_dataset(fmt, data_files=str(out), split="train")
    assert back.column_names == ["text", "label"] and len(back) == 30
    assert back[:10]["text"] == [r["text"] for r in rows]  # the originals first, then the copies


def test_parquet_rows_stay_in_arrow_through_splits_and_tokenization(tmp_path):
    """No step copies a datasets-read training set into Python objects: the splits are views of the memory-mapped
    table (ColumnRows), and tokenization maps it into a temporary Arrow file, never beside the user's data."""
    from transformers import AutoTokenizer

    from distilkit.data.columns import ColumnRows
    from distilkit.data.encode import encode_rows
    from distilkit.models import resolve_model

    rows = topic_rows(200, seed=6)
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "t.parquet"))
    data = load_task_data(DataOptions(data=str(tmp_path / "t.parquet"), split="0.8,0.1,0.1"), seed=1)
    train = data.splits["train"]
    assert isinstance(train, ColumnRows) and all(isinstance(s, ColumnRows) for s in data.splits.values())
    assert sum(len(s) for s in data.splits.values()) == 200
    assert {r["label"] for r in train} == set(data.labels)  # labels as names, like the CSV path
    assert train[3] == list(train)[3] and len(train[2:5]) == 3
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm-l6"))
    label2id = {x: i for i, x in enumerate(data.labels)}
    encoded, _ = encode_rows(train, data.task, tokenizer, 32, label2id, False)
    assert len(encoded) == len(train)
    files = [f["filename"] for f in encoded.cache_files]
    assert files and all("distilkit-arrow-" in f for f in files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]  # nothing written next to the data
