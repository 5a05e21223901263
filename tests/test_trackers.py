"""--report-to: the Trainer's trackers see distilkit's loss parts, and a run folder keeps the Trainer's standard
result files (trainer_state.json, train/eval/test_results.json, all_results.json) with no absolute machine paths.

MLflow runs on its local file store under the test's folder: nothing leaves the machine.
"""

import importlib.util
import json
import os
import shutil

import pytest
from conftest import run_cli

from distilkit.errors import DistilkitError

QUICK = ["--epochs", "1", "--batch-size", "16", "--warmup", "0", "--logging-steps", "2", "--eval-batch-size", "64"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path_factory.getbasetemp() / "teacher-cache"))


def tensorboard_scalars(folder) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return set(events.Tags()["scalars"])


def test_loss_parts_reach_tensorboard_and_mlflow(
    topic_run, topic_data, tmp_path, tmp_path_factory, monkeypatch, capsys
):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # relative paths, as a user types them: none of them may come back absolute
    shutil.copy(topic_data, "topics.csv")
    store = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    teacher = os.path.relpath(topic_run, tmp_path)
    args = ["distill", "--teacher", teacher, "--data", "topics.csv", "--student", "1", "--output", "runs/kd"]
    code, out, err = run_cli([*args, "--report-to", "tensorboard,mlflow", *QUICK], capsys)
    assert code == 0, out + err
    run = tmp_path / "runs" / "kd"

    parts = {"loss_kd", "loss_ce"}
    assert {f"train/{p}" for p in parts} <= tensorboard_scalars(run / "logs" / "prediction")
    client = MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.run_name for r in runs] == ["kd"]
    assert parts | {"loss", "eval_accuracy"} <= set(runs[0].data.metrics)
    assert len(client.get_metric_history(runs[0].info.run_id, "loss_kd")) >= 2  # every logging step

    state = json.loads((run / "trainer_state.json").read_text())
    assert sum("loss_kd" in entry for entry in state["log_history"]) >= 2
    assert state["best_model_checkpoint"].startswith("checkpoints/")  # relative to the run folder
    results = json.loads((run / "all_results.json").read_text())
    assert {"train_loss", "train_samples", "eval_accuracy", "eval_samples", "test_accuracy"} <= set(results)
    for split in ("train", "eval", "test"):
        assert json.loads((run / f"{split}_results.json").read_text()).items() <= results.items()
    config = (run / "config.yaml").read_text()
    assert "- tensorboard\n- mlflow" in config and "data: topics.csv" in config

    base = str(tmp_path_factory.getbasetemp())
    written = [p for p in run.rglob("*") if p.suffix in (".json", ".yaml")]
    absolute = [str(p.relative_to(run)) for p in written if base in p.read_text()]
    assert absolute == []


def test_a_finetune_run_keeps_the_trainers_result_files(topic_run):
    """The teacher fixture is a plain finetune run with the default --report-to tensorboard."""
    state = json.loads((topic_run / "trainer_state.json").read_text())
    assert any("loss" in entry for entry in state["log_history"])
    assert any("eval_accuracy" in entry for entry in state["log_history"])
    results = json.loads((topic_run / "all_results.json").read_text())
    assert {"train_runtime", "train_samples", "eval_loss", "eval_accuracy", "eval_samples", "test_accuracy"} <= set(
        results
    )
    assert {"train/loss", "eval/accuracy"} <= tensorboard_scalars(topic_run / "logs")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("tensorboard,mlflow", ["tensorboard", "mlflow"]),
        (" mlflow , tensorboard ", ["mlflow", "tensorboard"]),
        (["wandb", "trackio"], ["wandb", "trackio"]),
        ("none", []),
        ([], []),
    ],
)
def test_report_to_takes_names_and_lists(value, expected):
    from distilkit.config import DistillConfig, FinetuneConfig

    assert FinetuneConfig(report_to=value).report_to == expected
    assert DistillConfig(report_to=value).report_to == expected


def test_report_to_from_the_command_line_and_yaml(tmp_path):
    from distilkit.cli import parse

    assert parse(["distill", "--report-to", "tensorboard,mlflow"])[1].report_to == ["tensorboard", "mlflow"]
    assert parse(["finetune", "--report-to", "[mlflow, wandb]"])[1].report_to == ["mlflow", "wandb"]
    assert parse(["finetune"])[1].report_to == ["tensorboard"]
    config = tmp_path / "c.yaml"
    config.write_text("report-to: [tensorboard, mlflow]\n")
    assert parse(["finetune", "--config", str(config)])[1].report_to == ["tensorboard", "mlflow"]


@pytest.mark.parametrize(
    "value, needle",
    [
        ("tensorbord", "--report-to 'tensorbord': unknown tracker; choose from tensorboard, wandb, mlflow, trackio"),
        ("none,mlflow", "--report-to 'none,mlflow': none means no tracker; give it alone"),
    ],
)
def test_an_unknown_tracker_is_one_line(tiny_model, topic_data, tmp_path, capsys, value, needle):
    from distilkit.config import FinetuneConfig

    with pytest.raises(DistilkitError, match="unknown tracker|none means"):
        FinetuneConfig(report_to=value)
    args = ["finetune", "--model", tiny_model, "--data", topic_data, "--output", tmp_path / "r"]
    code, _, err = run_cli([*args, "--report-to", value], capsys)
    assert code == 2 and needle in err and err.count("\n") == 1


def test_a_tracker_that_is_not_installed_is_refused_before_any_work(
    tiny_model, topic_data, tmp_path, capsys, monkeypatch
):
    from distilkit.training import tracking

    real = importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None if name == "mlflow" else real(name))
    args = ["finetune", "--model", tiny_model, "--data", topic_data, "--output", tmp_path / "r"]
    code, out, err = run_cli([*args, "--report-to", "tensorboard,mlflow"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "--report-to mlflow: the mlflow package is not installed; pip install 'distilkit[trackers]'" in err
    assert "parameters" not in out and not (tmp_path / "r").exists()  # refused before the model was loaded
    assert list(tmp_path.iterdir()) == []


def test_an_mlflow_file_store_that_mlflow_refuses_is_named_first(tiny_model, topic_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path / "mlruns"))
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    args = ["finetune", "--model", tiny_model, "--data", topic_data, "--output", tmp_path / "r"]
    code, _, err = run_cli([*args, "--report-to", "mlflow"], capsys)
    assert code == 2 and err.count("\n") == 1 and "MLFLOW_ALLOW_FILE_STORE=true" in err
