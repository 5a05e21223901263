"""End to end through the CLI on a tiny random BERT: finetune → evaluate → predict, run folders, errors."""

import json
import subprocess
import sys

from conftest import FAST, ner_sentences, run_cli, topic_rows, write_conll, write_csv


def test_finetune_learns_and_writes_a_run_folder(topic_run):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    metrics = json.loads((topic_run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9  # chance is 1/3
    assert metrics["labels"] == ["food", "music", "sport"]
    for name in (
        "config.yaml",
        "model/config.json",
        "model/model.safetensors",
        "model/tokenizer.json",
        "confusion_matrix_test.png",
    ):
        assert (topic_run / name).exists(), name
    assert list((topic_run / "logs").glob("events.out.tfevents.*"))
    assert not (topic_run / "checkpoints").exists()
    assert not list(topic_run.parent.glob(".*partial"))
    model = AutoModelForSequenceClassification.from_pretrained(topic_run / "model")
    assert model.config.id2label == {0: "food", 1: "music", 2: "sport"}
    AutoTokenizer.from_pretrained(topic_run / "model")
    import yaml

    assert yaml.safe_load((topic_run / "config.yaml").read_text())["epochs"] == 8.0


def test_finished_run_is_not_overwritten(topic_run, capsys):
    before = (topic_run / "metrics.json").read_text()
    code, _, err = run_cli(["finetune", "--model", "x", "--data", "y.csv", "--output", topic_run], capsys)
    assert code == 2
    assert err.strip().count("\n") == 0 and "already there; pass --overwrite" in err
    assert (topic_run / "metrics.json").read_text() == before


def test_evaluate_on_a_new_csv(topic_run, tmp_path, capsys):
    fresh = write_csv(tmp_path / "never_seen.csv", topic_rows(30, seed=99))
    code, out, _ = run_cli(["evaluate", "--model", topic_run, "--data", fresh, "--output", tmp_path / "ev"], capsys)
    assert code == 0 and "confusion matrix" in out
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["examples"] == 30 and metrics["accuracy"] >= 0.9
    assert set(metrics["per_class"]) == {"food", "music", "sport"}
    assert (tmp_path / "ev" / "confusion_matrix.png").stat().st_size > 1000
    code, out, _ = run_cli(["evaluate", "--model", topic_run / "model", "--data", fresh, "--json"], capsys)
    assert json.loads(out)["accuracy"] == metrics["accuracy"]


def test_predict_from_arguments_file_and_stdin(topic_run, tmp_path, capsys, monkeypatch):
    code, out, _ = run_cli(
        ["predict", "--model", topic_run, "the band played a song", "we ate bread and cheese"], capsys
    )
    results = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["label"] for r in results] == ["music", "food"]
    assert abs(sum(results[0]["scores"].values()) - 1) < 1e-4
    (tmp_path / "in.txt").write_text("the coach saw the match\n\nthe chef made soup\n")
    code, _, _ = run_cli(
        ["predict", "--model", topic_run, "--file", tmp_path / "in.txt", "--output", tmp_path / "out.jsonl"], capsys
    )
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(x)["label"] for x in lines] == ["sport", "food"]
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("a new album by the singer\n"))
    code, out, _ = run_cli(["predict", "--model", topic_run, "--top-k", "1"], capsys)
    result = json.loads(out)
    assert result["label"] == "music" and list(result["scores"]) == ["music"]


def test_token_classification_end_to_end(tiny_model, tmp_path, capsys):
    data = write_conll(tmp_path / "ner.conll", ner_sentences(200, seed=2))
    out = tmp_path / "ner"
    code, _, _ = run_cli(
        ["finetune", "--model", tiny_model, "--data", data, "--output", out, "--epochs", "8", *FAST], capsys
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert code == 0 and metrics["task"] == "token-classification"
    assert metrics["test"]["entity"]["f1"] >= 0.9 and metrics["best_checkpoint_metric"]["f1"] >= 0.9
    code, stdout, _ = run_cli(["predict", "--model", out, "carol visited rome"], capsys)
    assert json.loads(stdout)["tags"] == ["B-PER", "O", "B-LOC"]
    # a sequence-classification CSV is the wrong task for this model
    csv_path = write_csv(tmp_path / "t.csv", topic_rows(6))
    code, _, err = run_cli(["evaluate", "--model", out, "--data", csv_path], capsys)
    assert code == 2 and "is a token-classification model" in err


def test_regression_and_freezing(tiny_model, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    rows = [{"text": r["text"], "label": f"{1.5 if r['label'] == 'music' else -0.5:.1f}"} for r in topic_rows(60)]
    data = write_csv(tmp_path / "reg.csv", rows)
    out = tmp_path / "reg"
    code, _, _ = run_cli(
        [
            "finetune",
            "--model",
            tiny_model,
            "--data",
            data,
            "--output",
            out,
            "--epochs",
            "2",
            "--freeze-embeddings",
            "--freeze-layers",
            "1",
            "--dropout",
            "0",
            *FAST,
        ],
        capsys,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert code == 0 and metrics["regression"] and "mse" in metrics["test"]
    assert metrics["trainable_parameters"] < metrics["parameters"]
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["problem_type"] == "regression" and config["hidden_dropout_prob"] == 0.0
    before, after = load_file(tiny_model / "model.safetensors"), load_file(out / "model" / "model.safetensors")
    key = next(k for k in before if "layer.0.attention.self.query.weight" in k)
    assert torch.equal(before[key], after["bert." + key.removeprefix("bert.")])  # frozen layer unchanged
    emb = next(k for k in before if "word_embeddings" in k)
    assert torch.equal(before[emb], after["bert." + emb.removeprefix("bert.")])
    code, stdout, _ = run_cli(["predict", "--model", out, "the band played a song"], capsys)
    assert isinstance(json.loads(stdout)["score"], float)


def test_interrupted_run_resumes(tiny_model, tmp_path, capsys, monkeypatch):
    from distilkit import runs

    data = write_csv(tmp_path / "t.csv", topic_rows(60))
    out = tmp_path / "r"
    args = ["finetune", "--model", tiny_model, "--data", data, "--output", out, "--epochs", "2", *FAST]

    def crash(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs.RunFolder, "finish", crash)
    code, _, err = run_cli(args, capsys)
    assert code == 130 and "--resume" in err and not out.exists()
    partial = tmp_path / ".r.partial"
    assert list((partial / "checkpoints").glob("checkpoint-*"))
    monkeypatch.undo()
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "pass --resume to continue it" in err
    code, stdout, _ = run_cli(args + ["--resume"], capsys)
    assert code == 0 and "resuming from" in stdout and (out / "metrics.json").exists() and not partial.exists()


def test_early_stopping_stops(tiny_model, tmp_path, capsys):
    import random

    rng = random.Random(0)
    rows = [{"text": r["text"], "label": rng.choice(["x", "y"])} for r in topic_rows(80)]  # unlearnable labels
    data = write_csv(tmp_path / "noise.csv", rows)
    out = tmp_path / "es"
    code, _, _ = run_cli(
        [
            "finetune",
            "--model",
            tiny_model,
            "--data",
            data,
            "--output",
            out,
            "--epochs",
            "30",
            "--early-stopping",
            "2",
            *FAST,
        ],
        capsys,
    )
    assert code == 0 and json.loads((out / "metrics.json").read_text())["train"]["epochs"] < 30


# ---- bad input through the CLI: exit 2, one line, nothing written ----


def test_bad_data_leaves_no_run_folder(tiny_model, tmp_path, capsys):
    rows = topic_rows(10)
    rows[4]["label"] = ""
    data = write_csv(tmp_path / "bad.csv", rows)
    out = tmp_path / "runs" / "bad"
    code, _, err = run_cli(["finetune", "--model", tiny_model, "--data", data, "--output", out], capsys)
    assert code == 2 and "bad.csv:6: empty label" in err and err.count("\n") == 1
    assert not out.exists()
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_model_folder_without_config_or_tokenizer(tiny_model, tmp_path, capsys, topic_csv):
    import shutil

    no_tok = tmp_path / "no_tok"
    shutil.copytree(tiny_model, no_tok)
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (no_tok / f).unlink(missing_ok=True)
    code, _, err = run_cli(["finetune", "--model", no_tok, "--data", topic_csv, "--output", tmp_path / "o"], capsys)
    assert code == 2 and "has no tokenizer" in err
    empty = tmp_path / "empty_model"
    empty.mkdir()
    code, _, err = run_cli(["evaluate", "--model", empty, "--data", topic_csv], capsys)
    assert code == 2 and "has no config.json" in err
    code, _, err = run_cli(["evaluate", "--model", tiny_model, "--data", topic_csv], capsys)
    assert code == 2 and "no sequence- or token-classification head; fine-tune it first" in err


def test_bad_yaml_and_unknown_options(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 2\nlr: [1e-3\n")
    code, _, err = run_cli(["finetune", "--config", bad], capsys)
    assert code == 2 and "bad.yaml" in err and "not valid YAML" in err and err.count("\n") == 1
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("epochs: 2\nbatch_sise: 8\n")
    code, _, err = run_cli(["finetune", "--config", unknown], capsys)
    assert code == 2 and "unknown option 'batch_sise'; did you mean 'batch_size'?" in err
    code, _, err = run_cli(["finetune", "--batch-sise", "8"], capsys)
    assert code == 2 and "did you mean --batch-size?" in err and err.count("\n") == 1
    code, _, err = run_cli(["finetune", "--epochs", "many"], capsys)
    assert code == 2 and "--epochs: Expected a float" in err


def test_help_shows_dashed_option_names(capsys):
    code, out, _ = run_cli(["finetune", "--help"], capsys)
    assert code == 0 and "--batch-size" in out and "--continue-from" in out
    assert "--batch_size" not in out


def test_yaml_config_sets_options(tiny_model, tmp_path):
    from distilkit.cli import parse

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: {tiny_model}\nepochs: 5\nbatch-size: 4\n")
    _, config, resolved = parse(["finetune", "--config", str(cfg), "--epochs", "7"])
    assert config.epochs == 7 and config.batch_size == 4 and resolved["model"] == str(tiny_model)


def test_python_dash_m_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "distilkit", "predict", "--model", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"distilkit: error: {tmp_path / 'missing'}: model folder not found"]
    version = subprocess.run([sys.executable, "-m", "distilkit", "--version"], capture_output=True, text=True)
    assert version.stdout.strip().startswith("distilkit ")


def test_every_option_has_a_help_group():
    """--help and docs/reference/cli.md group each command's options by distilkit.option_groups: a new option needs
    its group there (it would show under "other options"), and a group must not name an option the command lacks."""
    import dataclasses

    from distilkit.cli import COMMAND_TABLE
    from distilkit.option_groups import GROUPS, MAIN, OTHER, grouped

    assert set(GROUPS) == set(COMMAND_TABLE)
    for name, command in COMMAND_TABLE.items():
        fields = [f.name for f in dataclasses.fields(command.config)]
        groups = dict(grouped(name, fields))
        assert OTHER not in groups, f"{name}: give these options a group in option_groups.py: {groups.get(OTHER)}"
        assert next(iter(groups)) == MAIN and sorted(sum(groups.values(), [])) == sorted(fields)
        named = {option for options in GROUPS[name].values() for option in options}
        assert named <= set(fields), f"{name}: option_groups.py names options it lacks: {sorted(named - set(fields))}"


def test_help_shows_the_main_options_first_in_groups(capsys):
    code, out, _ = run_cli(["distill", "--help"], capsys)
    lines = out.splitlines()
    main = lines.index("main options:")
    options = [ln.split()[0] for ln in lines[main + 1 :] if ln.startswith("  --")][:5]
    assert code == 0 and options == ["--teacher", "--data", "--student", "--method", "--output"]
    assert main < 25 and "usage: distilkit [options] distill [--teacher TEACHER]" in out
    for title in ("distillation:", "data:", "training:", "PEFT:", "output and run folder:"):
        assert title in lines, title
    code, out, _ = run_cli(["bench", "--help"], capsys)
    assert code == 0 and out.index("main options:") < out.index("\n  models ") < out.index("measurement:")
