"""Continual learning: label map extension, replay, Learning without Forgetting, before/after metrics."""

import json

import pytest
import torch
from conftest import FAST, ner_sentences, run_cli, topic_rows, write_conll, write_csv
from safetensors.torch import load_file

from distilkit.cli import main


def rows_of(labels, n, seed):
    return [r for r in topic_rows(n, seed=seed) if r["label"] in labels]


@pytest.fixture(scope="module")
def old_run(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("continual")
    data = write_csv(folder / "old.csv", rows_of({"music", "sport"}, 300, 1))
    out = folder / "old"
    args = ["--data", str(data), "--output", str(out), "--epochs", "12", "--keep-data-sample", *FAST]
    main(["finetune", "--model", str(tiny_model), *args])
    return out


def test_run_folder_keeps_a_data_sample_when_asked(old_run, topic_run):
    lines = (old_run / "data_sample" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 160 and set(json.loads(lines[0])) == {"text", "label"}
    assert (old_run / "data_sample" / "test.jsonl").exists()
    assert not (old_run / "model" / "data_sample").exists()  # beside the model, never in it
    assert not (topic_run / "data_sample").exists()  # by default a run folder holds none of the user's data


def test_continue_from_a_run_without_a_data_sample(topic_run, tmp_path, capsys):
    new = write_csv(tmp_path / "new.csv", topic_rows(60, seed=4))
    args = ["finetune", "--continue-from", topic_run, "--data", new, "--epochs", "1", *FAST]
    code, _, err = run_cli([*args, "--output", tmp_path / "replayed", "--replay", "10"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "kept no data sample to replay (it ran without --keep-data-sample)" in err
    assert not (tmp_path / "replayed").exists()
    code, out, _ = run_cli([*args, "--output", tmp_path / "new"], capsys)
    assert code == 0 and "forgetting of its task is not measured" in out
    continual = json.loads((tmp_path / "new" / "metrics.json").read_text())["continual"]
    assert continual["old_task"] is None and 0 <= continual["new_task"]["after"] <= 1


@pytest.mark.parametrize("extra", [[], ["--preserve", "kd", "--replay", "40"]])
def test_continue_on_a_new_label(old_run, tmp_path, capsys, extra):
    new = write_csv(tmp_path / "new.csv", rows_of({"food"}, 90, 2) + rows_of({"sport"}, 30, 3))
    out = tmp_path / "new"
    main(
        [
            "finetune",
            "--continue-from",
            str(old_run),
            "--data",
            str(new),
            "--output",
            str(out),
            "--epochs",
            "10",
            *FAST,
            *extra,
        ]
    )
    stdout = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] == ["music", "sport", "food"]  # old ids unchanged, the new label appended
    c = metrics["continual"]
    assert c["old_task"]["before"] >= 0.9 and 0 <= c["old_task"]["after"] <= 1
    assert c["new_task"]["after"] > c["new_task"]["before"]  # the old model cannot say "food"
    assert "continual: old task" in stdout
    if extra:
        assert "replay: 40 old training examples mixed in" in stdout
        assert metrics["train"]["examples"] == 32 + 40  # 80% of the 40 new rows, plus the replayed ones


def test_old_head_rows_are_kept(old_run, tmp_path):
    from distilkit.models import load_model
    from distilkit.training import continual

    previous = continual.load_previous(str(old_run))
    model = load_model(previous.path, "sequence-classification", ["music", "sport", "food"])
    continual.keep_old_head_rows(model, previous.model, 2)
    old = load_file(old_run / "model" / "model.safetensors")
    assert torch.equal(model.classifier.weight[:2], old["classifier.weight"])


def test_continue_from_a_run_of_another_task(old_run, tmp_path, capsys):
    data = write_conll(tmp_path / "ner.conll", ner_sentences(20))
    with pytest.raises(SystemExit):
        main(["finetune", "--continue-from", str(old_run), "--data", str(data), "--output", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert "that run is sequence-classification, the new data is token-classification" in err
    assert not (tmp_path / "x").exists()
