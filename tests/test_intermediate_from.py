"""`distill --intermediate-from RUN`: the prediction stage starts from an earlier run's intermediate stage, and the
result is exactly that of a full run with the same options; a run whose first stage differs is refused."""

import json
import shutil

import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path_factory.getbasetemp() / "teacher-cache"))


@pytest.fixture(scope="module")
def first(topic_run, topic_data, tmp_path_factory):
    """A full two-stage run: the one the others reuse."""
    out = tmp_path_factory.mktemp("reuse") / "full"
    code, _, err = run_cli(tinybert(topic_run, topic_data, out))
    assert code == 0, err
    return out


def tinybert(topic_run, topic_data, out, *extra):
    args = ["distill", "--teacher", topic_run, "--data", topic_data, "--student", "1L-16H-2A-32F"]
    args += ["--method", "tinybert", "--intermediate-epochs", "1", "--epochs", "1", "--max-train-samples", "48"]
    return [*args, "--batch-size", "16", "--warmup", "0", "--output", out, *extra]


def weights(run):
    return load_file(run / "model" / "model.safetensors")


def test_reused_intermediate_stage_gives_the_full_runs_student(first, topic_run, topic_data, tmp_path, capsys):
    code, out, err = run_cli(tinybert(topic_run, topic_data, tmp_path / "again", "--intermediate-from", first), capsys)
    assert code == 0, err
    assert "stage intermediate: already done" in out
    full, reused = weights(first), weights(tmp_path / "again")
    assert full.keys() == reused.keys() and all(torch.equal(full[k], reused[k]) for k in full)
    metrics = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert metrics["train"]["stages"]["intermediate"] == {"reused_from": str(first)}  # as given, not resolved
    assert "epoch_seconds" in metrics["train"]["stages"]["prediction"]
    # the stage file travels with the new run, so that it can be reused in turn
    saved = tmp_path / "again" / "stage-intermediate.safetensors"
    assert saved.read_bytes() == (first / "stage-intermediate.safetensors").read_bytes()


def test_prediction_stage_options_may_change(first, topic_run, topic_data, tmp_path, capsys):
    longer = ["--intermediate-from", first, "--epochs", "2", "--alpha", "0.5"]
    longer += ["--lr", "1e-4", "--intermediate-lr", "5e-5"]  # the first run's stage-1 lr (the default), said explicitly
    code, _, err = run_cli(tinybert(topic_run, topic_data, tmp_path / "longer", *longer), capsys)
    assert code == 0, err
    full, other = weights(first), weights(tmp_path / "longer")
    assert not all(torch.equal(full[k], other[k]) for k in full)  # the new prediction stage did run
    stage_weights = load_file(first / "stage-intermediate.safetensors")
    embeddings = "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(stage_weights[f"student.{embeddings}"], other[embeddings])


@pytest.mark.parametrize(
    "change, named",
    [
        (["--seed", "7"], "seed was 42, now 7"),
        (["--intermediate-epochs", "2"], "intermediate epochs was 1.0, now 2.0"),
        (["--epochs", "2", "--intermediate-epochs", None], "intermediate epochs was 1.0, now 2.0"),
        (["--lr", "1e-4"], "intermediate lr was 5e-05, now 0.0001"),  # --lr is stage 1's too without --intermediate-lr
        (["--max-train-samples", "40"], "max-train-samples was 48, now 40"),
        (["--layer-map", "last"], "layer-map was None, now 'last'"),
    ],
)
def test_other_intermediate_options_are_refused(first, topic_run, topic_data, tmp_path, capsys, change, named):
    args = tinybert(topic_run, topic_data, tmp_path / "x", "--intermediate-from", first)
    if None in change:  # drop an option instead: --epochs then governs the intermediate stage too
        i = args.index(change[2])
        del args[i : i + 2]
        change = change[:2]
    code, _, err = run_cli([*args, *change], capsys)
    assert code == 2
    assert named in err and "--intermediate-from" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / ".x.partial").exists()


def test_changed_data_file_is_refused(topic_run, topic_data, tmp_path, capsys):
    data = tmp_path / "topics.csv"
    data.write_text(topic_data.read_text())
    code, _, err = run_cli(tinybert(topic_run, data, tmp_path / "a"), capsys)
    assert code == 0, err
    text = topic_data.read_text()
    data.write_text(text + text.splitlines()[-1] + "\n")  # one more row
    code, _, err = run_cli(tinybert(topic_run, data, tmp_path / "b", "--intermediate-from", tmp_path / "a"), capsys)
    assert code == 2 and "the file of --data changed" in err


def test_runs_without_an_intermediate_stage_are_refused(first, topic_run, topic_data, tmp_path, capsys):
    kd = ["distill", "--teacher", topic_run, "--data", topic_data, "--student", "1L-16H-2A-32F", "--epochs", "1"]
    code, _, err = run_cli([*kd, "--output", tmp_path / "kd", "--intermediate-from", first], capsys)
    assert code == 2 and "--method kd has one stage" in err
    code, _, err = run_cli(tinybert(topic_run, topic_data, tmp_path / "b", "--intermediate-from", tmp_path), capsys)
    assert code == 2 and "not a distilkit run folder" in err
    code, _, err = run_cli(tinybert(topic_run, topic_data, tmp_path / "c", "--intermediate-from", topic_run), capsys)
    assert code == 2 and "stage-intermediate.safetensors is missing" in err
    assert not any(p.name in ("b", "c", "kd") for p in tmp_path.iterdir())


def test_weights_of_another_student_are_refused(first, topic_run, topic_data, tmp_path, capsys):
    from safetensors.torch import save_file

    other = tmp_path / "other"
    shutil.copytree(first, other)

    state = load_file(first / "stage-intermediate.safetensors")
    state["projections.0.weight"] = torch.zeros(3, 3)
    save_file(state, str(other / "stage-intermediate.safetensors"))
    code, _, err = run_cli(tinybert(topic_run, topic_data, tmp_path / "x", "--intermediate-from", other), capsys)
    assert code == 2 and "does not fit this student (projections.0.weight: saved (3, 3)" in err
