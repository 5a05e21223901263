"""`distilkit search`: trials run as ordinary runs, best.yaml is a usable config, bad spaces are refused."""

import csv

import pytest
import yaml
from conftest import topic_rows, write_csv

from distilkit.cli import main


def test_search_finetune_writes_best_config(tiny_model, tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", topic_rows(60))
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"model": str(tiny_model), "data": str(data), "batch_size": 16, "warmup": 0}))
    out = tmp_path / "search"
    main(["search", "--base", str(base), "--space", "{lr: [1.0e-4, 5.0e-3], epochs: [1, 2], batch_size: {choices: [8, 16]}}",
          "--trials", "3", "--output", str(out)])
    stdout = capsys.readouterr().out
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 3 and {"lr", "epochs", "batch_size", "accuracy"} <= set(rows[0])
    assert all(1e-4 <= float(r["lr"]) <= 5e-3 and r["epochs"] in ("1", "2") for r in rows)
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["model"] == str(tiny_model) and "lr" in best and "best dev accuracy" in stdout
    assert max(float(r["accuracy"]) for r in rows) == pytest.approx(
        float(next(r for r in rows if float(r["lr"]) == best["lr"])["accuracy"]))
    # the best config is accepted by finetune
    main(["finetune", "--config", str(out / "best.yaml"), "--output", str(tmp_path / "final")])
    assert (tmp_path / "final" / "metrics.json").exists()


@pytest.mark.parametrize("space,message", [
    ("{lr: [1.0e-3, 1.0e-5]}", "empty range"),
    ("{temperature: [1.0, 4.0]}", "'temperature' is not an option of finetune"),
    ("{batch_size: {choices: []}}", "has no choices"),
    ("{}", "--space is empty"),
])
def test_bad_search_spaces(tmp_path, capsys, space, message):
    with pytest.raises(SystemExit):
        main(["search", "--space", space, "--output", str(tmp_path / "s")])
    assert message in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_search_distill_temperature_and_alpha(topic_run, topic_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "dsearch"
    main(["search", "--command", "distill", "--options",
          f"{{teacher: {topic_run}, data: {topic_data}, student: '1', epochs: 1, batch_size: 16}}",
          "--space", "{temperature: [1.0, 4.0], alpha: [0.0, 1.0]}", "--trials", "2", "--output", str(out)])
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert 1.0 <= best["temperature"] <= 4.0 and 0.0 <= best["alpha"] <= 1.0 and best["student"] == "1"
