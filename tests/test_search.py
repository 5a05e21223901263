"""`distilkit search`: trials run as ordinary runs, best.yaml is a usable config, bad spaces are refused."""

import csv
from pathlib import Path

import pytest
import yaml
from conftest import run_cli, topic_rows, write_csv

from distilkit.cli import main


def test_search_finetune_writes_best_config(tiny_model, tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", topic_rows(60))
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"model": str(tiny_model), "data": str(data), "batch_size": 16, "warmup": 0}))
    out = tmp_path / "search"
    main(
        [
            "search",
            "--base",
            str(base),
            "--space",
            "{lr: [1.0e-4, 5.0e-3], epochs: [1, 2], batch_size: {choices: [8, 16]}}",
            "--trials",
            "3",
            "--output",
            str(out),
        ]
    )
    stdout = capsys.readouterr().out
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 3 and {"lr", "epochs", "batch_size", "accuracy"} <= set(rows[0])
    assert all(1e-4 <= float(r["lr"]) <= 5e-3 and r["epochs"] in ("1", "2") for r in rows)
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["model"] == str(tiny_model) and "lr" in best and "best dev accuracy" in stdout
    assert max(float(r["accuracy"]) for r in rows) == pytest.approx(
        float(next(r for r in rows if float(r["lr"]) == best["lr"])["accuracy"])
    )
    # the best config is accepted by finetune
    main(["finetune", "--config", str(out / "best.yaml"), "--output", str(tmp_path / "final")])
    assert (tmp_path / "final" / "metrics.json").exists()


@pytest.mark.parametrize(
    "space,message",
    [
        ("{lr: [1.0e-3, 1.0e-5]}", "empty range"),
        ("{temperature: [1.0, 4.0]}", "'temperature' is not an option of finetune"),
        ("{batch_size: {choices: []}}", "has no choices"),
        ("{}", "--space is empty"),
    ],
)
def test_bad_search_spaces(tmp_path, capsys, space, message):
    with pytest.raises(SystemExit):
        main(["search", "--space", space, "--output", str(tmp_path / "s")])
    assert message in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_search_distill_temperature_and_alpha(topic_run, topic_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "dsearch"
    main(
        [
            "search",
            "--command",
            "distill",
            "--options",
            f"{{teacher: {topic_run}, data: {topic_data}, student: '1', epochs: 1, batch_size: 16}}",
            "--space",
            "{temperature: [1.0, 4.0], alpha: [0.0, 1.0]}",
            "--trials",
            "2",
            "--output",
            str(out),
        ]
    )
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert 1.0 <= best["temperature"] <= 4.0 and 0.0 <= best["alpha"] <= 1.0 and best["student"] == "1"


def test_failing_trials_are_recorded_and_the_search_goes_on(tiny_model, tmp_path, monkeypatch, capsys):
    """Trials 1 and 3 fail mid-training (after their partial run folder exists); the others finish."""
    from transformers import Trainer

    data = write_csv(tmp_path / "t.csv", topic_rows(60))
    out = tmp_path / "search"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")  # a user's folder: never written into
    real_train, partials = Trainer.train, []

    def train(self, *args, **kwargs):
        partial = Path(self.args.output_dir).parent  # OUTPUT/.trial-NNN.partial
        if partial.name in (".trial-001.partial", ".trial-003.partial"):
            partials.append(partial if partial.is_dir() else None)
            raise RuntimeError(f"simulated out of memory in {partial.name}\nsecond line")
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train", train)
    code, stdout, err = run_cli(
        [
            "search",
            "--options",
            f"{{model: {tiny_model}, data: {data}, warmup: 0}}",
            "--space",
            "{lr: [1.0e-4, 5.0e-3], batch_size: {choices: [8, 16]}}",
            "--trials",
            "4",
            "--output",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    assert len(partials) == 2 and all(partials)  # the failures happened with a run folder half written
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL", "COMPLETE", "FAIL"]
    assert (
        rows[1]["error"] == "RuntimeError: simulated out of memory in .trial-001.partial" and rows[1]["accuracy"] == ""
    )
    assert rows[0]["error"] == "" and 0 <= float(rows[0]["accuracy"]) <= 1 and rows[1]["lr"] != ""
    assert sorted(p.name for p in out.iterdir()) == [".distilkit", "best.yaml", "trial-000", "trial-002", "trials.csv"]
    args = ["search", "--options", f"{{model: {tiny_model}, data: {data}}}", "--space", "{lr: [1.0e-4, 5.0e-3]}"]
    code, _, err = run_cli([*args, "--output", mine], capsys)
    assert (
        code == 2 and "was not written by distilkit" in err and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    )
    assert "trial 1 failed: RuntimeError: simulated out of memory" in stdout and "2 of 4 trials failed" in stdout
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["lr"] in (float(rows[0]["lr"]), float(rows[2]["lr"]))


def test_search_where_every_trial_fails_ends_with_one_line(tiny_model, topic_csv, tmp_path, monkeypatch, capsys):
    import distilkit.training.finetune

    def failing(cfg, resolved=None):
        partial = Path(cfg.output).parent / f".{Path(cfg.output).name}.partial"
        partial.mkdir(parents=True)
        raise RuntimeError(f"boom in {Path(cfg.output).name}")

    monkeypatch.setattr(distilkit.training.finetune, "finetune", failing)
    out = tmp_path / "search"
    code, stdout, err = run_cli(
        [
            "search",
            "--options",
            f"{{model: {tiny_model}, data: {topic_csv}}}",
            "--space",
            "{lr: [1.0e-4, 5.0e-3]}",
            "--trials",
            "2",
            "--output",
            out,
        ],
        capsys,
    )
    assert code == 2 and "trial 0 failed" in stdout and "trial 1 failed" in stdout
    last = err.strip().splitlines()[-1]
    assert (
        last == "distilkit: error: all 2 trials failed, so there is no best option set; "
        "trial 0: RuntimeError: boom in trial-000"
    )
    assert not out.exists()  # nothing of the search is left


def test_a_missing_data_file_fails_before_any_trial(tiny_model, tmp_path, capsys):
    out = tmp_path / "search"
    code, stdout, err = run_cli(
        [
            "search",
            "--options",
            f"{{model: {tiny_model}, data: {tmp_path / 'nope.csv'}}}",
            "--space",
            "{lr: [1.0e-4, 5.0e-3]}",
            "--trials",
            "3",
            "--output",
            out,
        ],
        capsys,
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nope.csv: no such file" in err
    assert "trial 0" not in stdout and not out.exists()
