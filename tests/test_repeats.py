"""--seeds N and --folds K (training/repeats.py): the repeats, the run kept, the pooled scores, the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import FAST, ner_sentences, run_cli, topic_rows, write_conll, write_csv

import distilkit
from distilkit.training.finetune import FinetuneJob


def metrics_of(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_finetune_seeds_keeps_the_best_dev_run_and_records_every_seed(tiny_model, topic_data, tmp_path, capsys):
    out = tmp_path / "seeds"
    args = ["finetune", "--model", tiny_model, "--data", topic_data, "--output", out, "--epochs", "3", "--seeds", "3"]
    code, printed, _ = run_cli([*args, *FAST], capsys)
    assert code == 0
    block = metrics_of(out)["seeds"]
    runs = {row["run"]: row for row in block["runs"]}
    assert list(runs) == ["seed-42", "seed-43", "seed-44"]
    for name, row in runs.items():  # each seed's own run folder, its scores as its metrics.json has them
        own = metrics_of(out / "seeds" / name)
        assert row["dev"] == own["dev"]["accuracy"] and row["test"] == own["test"]["accuracy"]
        config = yaml.safe_load((out / "seeds" / name / "config.yaml").read_text())
        assert config["seed"] == int(name.split("-")[1]) and config["data_seed"] == 42  # one split for all seeds
    best = max(block["runs"], key=lambda row: row["dev"])  # the first of equals: max keeps the first
    assert block["chosen"] == best["run"] and block["chosen_by"] == "dev accuracy"
    tests = [row["test"] for row in block["runs"]]
    assert block["mean"]["test"] == pytest.approx(np.mean(tests))
    assert block["sd"]["test"] == pytest.approx(np.std(tests, ddof=1))
    kept = (out / "model" / "model.safetensors").read_bytes()
    assert kept == (out / "seeds" / best["run"] / "model" / "model.safetensors").read_bytes()
    assert metrics_of(out)["test"] == metrics_of(out / "seeds" / best["run"])["test"]
    assert "mean ± sd" in printed and f"kept: {best['run']}, by dev accuracy" in printed
    card = (out / "model" / "README.md").read_text()
    assert f"Seeds: 3 runs; this model is {best['run']}, chosen by dev accuracy" in card
    assert "Seeds:" not in (out / "seeds" / best["run"] / "model" / "README.md").read_text()  # a copy, not a link


def interrupted_seeds_run(out: Path, tiny_model, topic_data, monkeypatch) -> dict:
    """A finetune --seeds 2 (seeds 7 and 8) interrupted in seed 8; returns its options, to run it again."""
    train = FinetuneJob.train

    def interrupted(self, work, run):
        if self.cfg.seed == 8:
            raise KeyboardInterrupt
        return train(self, work, run)

    monkeypatch.setattr(FinetuneJob, "train", interrupted)
    options = dict(model=str(tiny_model), data=str(topic_data), output=str(out), epochs=1, seed=7, seeds=2)
    with pytest.raises(KeyboardInterrupt):
        distilkit.finetune(**options)
    monkeypatch.setattr(FinetuneJob, "train", train)
    return options


def test_seeds_from_python_and_resume_keeps_finished_seeds(tiny_model, topic_data, tmp_path, monkeypatch, capsys):
    """An interrupted --seeds run resumes: the seeds that finished are kept, the others run."""
    out = tmp_path / "api"
    options = interrupted_seeds_run(out, tiny_model, topic_data, monkeypatch)
    assert not out.exists() and (tmp_path / ".api.partial" / "seeds" / "seed-7" / "metrics.json").is_file()
    capsys.readouterr()
    result = distilkit.finetune(**options, resume=True)
    assert "seed-7: finished earlier, kept" in capsys.readouterr().out
    assert [row["run"] for row in result.metrics["seeds"]["runs"]] == ["seed-7", "seed-8"]
    assert (result.model / "config.json").is_file()


def test_overwrite_of_an_interrupted_seeds_run_runs_every_seed(tiny_model, topic_data, tmp_path, monkeypatch):
    """--overwrite over an interrupted --seeds run: the seeds the old partial folder had finished run again (the
    repeat prepared first is then not the first to run; each repeat still gets its own job)."""
    out = tmp_path / "again"
    options = interrupted_seeds_run(out, tiny_model, topic_data, monkeypatch)
    result = distilkit.finetune(**options, overwrite=True)
    assert [row["run"] for row in result.metrics["seeds"]["runs"]] == ["seed-7", "seed-8"]
    assert all((out / "seeds" / s / "model" / "config.json").is_file() for s in ("seed-7", "seed-8"))


@pytest.fixture(scope="module")
def folds_teacher(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("folds")
    data = write_csv(folder / "topics.csv", topic_rows(240, seed=1))
    out = folder / "teacher"
    args = ["finetune", "--model", tiny_model, "--data", data, "--output", out, "--epochs", "8", "--folds", "3"]
    assert run_cli([*args, *FAST])[0] == 0
    return out, data


def test_finetune_folds_pool_every_example_once(folds_teacher):
    from sklearn.metrics import accuracy_score

    out, _ = folds_teacher
    metrics = metrics_of(out)
    records = [json.loads((out / "folds" / f"fold-{k}" / "predictions_test.json").read_text()) for k in range(3)]
    gold = [g for r in records for g in r["model"]["gold"]]
    predicted = [p for r in records for p in r["model"]["predicted"]]
    assert len(gold) == 240 and sorted(gold) == sorted(row["label"] for row in topic_rows(240, seed=1))
    assert metrics["test"]["examples"] == metrics["folds"]["examples"] == 240
    assert metrics["test"]["accuracy"] == pytest.approx(accuracy_score(gold, predicted))
    low, high = metrics["test"]["intervals"]["accuracy"]
    assert low <= metrics["test"]["accuracy"] <= high
    assert metrics["folds"]["k"] == 3 and metrics["folds"]["data_seed"] == 42
    assert (out / "model" / "config.json").is_file()
    assert "Cross-validation: 3 folds; the test scores below are pooled" in (out / "model" / "README.md").read_text()


def test_distill_folds_uses_each_folds_own_teacher(folds_teacher, tmp_path, capsys):
    teacher, data = folds_teacher
    out = tmp_path / "student"
    args = ["distill", "--teacher", teacher, "--student", "1", "--data", data, "--output", out, "--folds", "3"]
    code, printed, _ = run_cli([*args, "--epochs", "2", "--force", *FAST], capsys)
    assert code == 0 and "WARNING" not in printed
    for k in range(3):
        config = yaml.safe_load((out / "folds" / f"fold-{k}" / "config.yaml").read_text())
        assert config["teacher"] == str(teacher / "folds" / f"fold-{k}")
        # both commands keep the fold's examples in one order (the rows'), so their predictions pair up
        finetuned = json.loads((teacher / "folds" / f"fold-{k}" / "predictions_test.json").read_text())["model"]
        distilled = json.loads((out / "folds" / f"fold-{k}" / "predictions_test.json").read_text())["student"]
        assert finetuned["gold"] == distilled["gold"]
    test = metrics_of(out)["test"]
    assert test["student"]["examples"] == test["teacher"]["examples"] == 240
    # the pooled teacher is the teacher run's own pooled score: the same fold models on the same folds (within an
    # example or two: the Trainer's prediction path and distill's evaluation may differ in precision)
    assert test["teacher"]["accuracy"] == pytest.approx(metrics_of(teacher)["test"]["accuracy"], abs=2 / 240)
    assert test["paired"]["difference"] == pytest.approx(test["student"]["accuracy"] - test["teacher"]["accuracy"])
    assert "pooled over 3 folds (240 test predictions)" in printed and "student − teacher (paired, pooled)" in printed


def test_distill_folds_with_one_teacher_warns_of_leakage(topic_run, topic_data, tmp_path, capsys):
    out = tmp_path / "leaky"
    args = ["distill", "--teacher", topic_run, "--student", "1", "--data", topic_data, "--output", out]
    code, printed, _ = run_cli([*args, "--folds", "2", "--epochs", "1", *FAST], capsys)
    assert code == 0 and "WARNING: --folds 2: the teacher" in printed
    assert "optimistic" in metrics_of(out)["folds"]["warning"]


def test_token_classification_folds_pool_sentences(tiny_model, tmp_path):
    data = write_conll(tmp_path / "ner.conll", ner_sentences(60, seed=2))
    out = tmp_path / "ner"
    args = ["finetune", "--model", tiny_model, "--data", data, "--output", out, "--epochs", "1", "--folds", "2"]
    assert run_cli([*args, *FAST])[0] == 0
    test = metrics_of(out)["test"]
    assert test["intervals"]["unit"] == "sentences" and metrics_of(out)["folds"]["examples"] == 60


def test_seeds_in_a_recipe(tiny_model, tmp_path):
    data = write_csv(tmp_path / "topics.csv", topic_rows(120, seed=1))
    quick = {"epochs": 1, "lr": 1e-3, "batch_size": 16, "warmup": 0}
    recipe = {
        "name": "seeds",
        "output": str(tmp_path / "run"),
        "data": {"data": str(data), "max_length": 32},
        "teacher": {"model": str(tiny_model), **quick},
        "students": {"s1": {"student": "1", "method": "kd", "seeds": 2, "force": True, **quick}},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert run_cli(["run", path])[0] == 0
    student = tmp_path / "run" / "students" / "s1"
    assert [row["run"] for row in metrics_of(student)["seeds"]["runs"]] == ["seed-42", "seed-43"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seeds", "0"], "--seeds 0: must be an integer ≥ 1"),
        (["--folds", "1"], "--folds 1: must be an integer ≥ 2"),
        (["--folds", "3", "--seeds", "2"], "--seeds 2 with --folds 3: choose one"),
        (["--fold", "3", "--folds", "3"], "--fold 3: needs --folds K with K > 3"),
        (["--folds", "4"], "--folds 4: the smallest class of"),
    ],
)
def test_bad_repeat_options_are_one_line_errors_and_write_nothing(tiny_model, tmp_path, capsys, extra, message):
    rows = topic_rows(30, seed=4)
    rows[0]["label"] = rows[1]["label"] = rows[2]["label"] = "rare"  # 3 examples: at most 3 folds
    data = write_csv(tmp_path / "data.csv", rows)
    out = tmp_path / "out"
    code, _, err = run_cli(["finetune", "--model", tiny_model, "--data", data, "--output", out, *extra], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    if "smallest" in message:
        assert "'rare', has 3 examples" in err and "use --folds 3 or fewer" in err
    assert not out.exists() and not (tmp_path / ".out.partial").exists()


def test_folds_refuse_data_with_a_test_split_of_its_own(tiny_model, topic_data, tmp_path, capsys):
    args = ["finetune", "--model", tiny_model, "--data", topic_data, "--test-file", topic_data, "--folds", "2"]
    code, _, err = run_cli([*args, "--output", tmp_path / "x"], capsys)
    assert code == 2 and "--folds 2: cross-validation splits one labelled file" in err and "test split" in err
