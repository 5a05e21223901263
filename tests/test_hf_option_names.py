"""Hugging Face's option names (TrainingArguments fields, the example scripts' spellings) as aliases of distilkit's:
the command line, config files, recipes and the Python API take them with the same meaning, --help names them, and
a misspelt name gets the nearest real option, aliases included."""

import pytest
from conftest import run_cli

from distilkit.cli import parse
from distilkit.errors import DistilkitError

BASE = ["--data", "train.csv"]  # parsing reads no file


@pytest.mark.parametrize(
    "command, alias, option",
    [
        ("finetune", ["--learning-rate", "1e-3"], ["--lr", "1e-3"]),
        ("finetune", ["--learning_rate=1e-3"], ["--lr", "1e-3"]),
        ("finetune", ["--num-train-epochs", "2"], ["--epochs", "2"]),
        ("finetune", ["--per-device-train-batch-size", "8"], ["--batch-size", "8"]),
        ("finetune", ["--train-batch-size", "8"], ["--batch-size", "8"]),
        ("finetune", ["--per-device-eval-batch-size", "8"], ["--eval-batch-size", "8"]),
        ("finetune", ["--gradient-accumulation-steps", "4"], ["--grad-accum", "4"]),
        ("finetune", ["--warmup-steps", "100"], ["--warmup", "100"]),
        ("finetune", ["--warmup-ratio", "0.06"], ["--warmup", "0.06"]),
        ("finetune", ["--warmup-ratio=0.06"], ["--warmup", "0.06"]),
        ("finetune", ["--metric-for-best-model", "f1"], ["--metric", "f1"]),
        ("finetune", ["--early-stopping-patience", "2"], ["--early-stopping", "2"]),
        ("finetune", ["--fp16"], ["--precision", "fp16"]),
        ("finetune", ["--bf16", "true"], ["--precision", "bf16"]),
        ("finetune", ["--bf16", "false"], ["--precision", "fp32"]),
        ("finetune", ["--resume-from-checkpoint"], ["--resume"]),
        ("finetune", ["--output-dir", "runs/x"], ["--output", "runs/x"]),
        ("finetune", ["--overwrite-output-dir"], ["--overwrite"]),
        ("finetune", ["--model-name-or-path", "bert-base-uncased"], ["--model", "bert-base-uncased"]),
        ("finetune", ["--dataset-name", "bbc-news"], ["--data", "bbc-news"]),
        ("finetune", ["--validation-file", "dev.csv"], ["--dev-file", "dev.csv"]),
        ("finetune", ["--max-seq-length", "64"], ["--max-length", "64"]),
        ("finetune", ["--text-column-name", "sentence"], ["--text-column", "sentence"]),
        ("finetune", ["--label-column-name", "y"], ["--label-column", "y"]),
        ("finetune", ["--do-regression", "true"], ["--regression", "true"]),
        ("finetune", ["--metric-name", "f1"], ["--metric", "f1"]),
        ("distill", ["--model-name-or-path", "4L-312H-12A-1200F"], ["--student", "4L-312H-12A-1200F"]),
        ("distill", ["--teacher-model-name-or-path", "runs/t"], ["--teacher", "runs/t"]),
        ("distill", ["--learning-rate", "1e-4", "--num-train-epochs", "3"], ["--lr", "1e-4", "--epochs", "3"]),
        (
            "evaluate",
            ["--model-name-or-path", "runs/t", "--max-seq-length", "64"],
            ["--model", "runs/t", "--max-length", "64"],
        ),
        (
            "predict",
            ["--model-name-or-path", "runs/t", "--output-dir", "p.jsonl"],
            ["--model", "runs/t", "--output", "p.jsonl"],
        ),
        (
            "finetune",
            ["--dataset-name", "org/set", "--dataset-config-name", "mrpc"],
            ["--data", "org/set", "--data-config", "mrpc"],
        ),
        (
            "push",
            ["--model", "runs/s", "--hub-model-id", "org/s", "--hub-private-repo"],
            ["--model", "runs/s", "--repo-id", "org/s", "--private"],
        ),
    ],
)
def test_each_alias_parses_to_the_same_config_as_the_option(command, alias, option):
    base = [] if command in ("predict", "push") else BASE
    assert parse([command, *base, *alias]) == parse([command, *base, *option])


def test_names_hugging_face_shares_with_distilkit_need_no_alias():
    shared = ["--seed", "3", "--logging-steps", "7", "--save-steps", "50", "--weight-decay", "0.1"]
    shared += ["--max-grad-norm", "0.5", "--report-to", "none", "--train-file", "a.csv", "--test-file", "b.csv"]
    shared += ["--max-train-samples", "10", "--max-eval-samples", "5"]
    _, config, _ = parse(["finetune", *shared])
    assert (config.seed, config.logging_steps, config.save_steps, config.report_to) == (3, 7, 50, [])
    assert (config.train_file, config.test_file, config.max_eval_samples) == ("a.csv", "b.csv", 5)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--warmup-ratio", "1.5"], "--warmup-ratio 1.5: must be a fraction in [0, 1) of all steps"),
        (["--warmup-steps", "2.5"], "--warmup-steps 2.5: must be an integer ≥ 0 (a number of steps)"),
        (["--warmup-steps", "inf"], "--warmup-steps inf: must be an integer ≥ 0 (a number of steps)"),
        (["--bf16", "maybe"], "--bf16 'maybe': must be true or false"),
        (["--resume-from-checkpoint", "runs/x/checkpoint-5"], "distilkit resumes an interrupted run from its own"),
    ],
)
def test_an_alias_whose_meaning_differs_checks_its_value(args, needle, capsys):
    code, _, err = run_cli(["finetune", *BASE, *args], capsys)
    assert code == 2 and needle in err and err.count("\n") == 1


def test_training_aliases_stay_with_the_commands_that_train(capsys):
    """bench's --warmup is rounds, evaluate's --batch-size an evaluation batch: TrainingArguments names do not
    reach them."""
    code, _, err = run_cli(["bench", "--warmup-steps", "3"], capsys)
    assert code == 2 and "nrecognized" in err
    code, _, err = run_cli(["evaluate", "--per-device-train-batch-size", "3"], capsys)
    assert code == 2 and "nrecognized" in err


def test_help_names_the_aliases(capsys):
    from distilkit.cli import main

    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for alias in ("--learning-rate", "--num-train-epochs", "--per-device-train-batch-size", "--warmup-ratio"):
        assert f"also: {alias}" in text or f", {alias}" in text, alias
    assert "--validation-file" in text and "--model-name-or-path" in text and "--output-dir" in text
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(also: --model-name-or-path)" in text and "(also: --teacher-model-name-or-path)" in text


def test_config_files_and_recipe_sections_take_the_aliases(tmp_path):
    from distilkit.config import DistillConfig
    from distilkit.config_loader import load_options

    config = tmp_path / "hf.yaml"
    config.write_text("learning_rate: 1e-3\nper-device-train-batch-size: 8\nwarmup_ratio: 0.1\nfp16: true\n")
    _, from_yaml, _ = parse(["finetune", "--config", str(config)])
    _, plain, _ = parse(["finetune", "--lr", "1e-3", "--batch-size", "8", "--warmup", "0.1", "--precision", "fp16"])
    assert from_yaml == plain
    section = load_options(DistillConfig, {"num_train_epochs": 2, "model_name_or_path": "3"}, "recipe.yaml", "s")
    assert section == {"epochs": 2, "student": "3"}
    twice = tmp_path / "twice.yaml"
    twice.write_text("lr: 1e-3\nlearning_rate: 2e-3\n")
    with pytest.raises(DistilkitError, match="twice.yaml: --lr and --learning-rate both set --lr; keep one"):
        parse(["finetune", "--config", str(twice)])


def test_the_python_api_takes_the_aliases():
    from distilkit.api import build_config

    assert build_config("finetune", {"learning_rate": 1e-3, "num_train_epochs": 2}) == build_config(
        "finetune", {"lr": 1e-3, "epochs": 2}
    )
    with pytest.raises(TypeError, match="'per_device_train_batchsize'; did you mean 'batch_size'?"):
        build_config("finetune", {"per_device_train_batchsize": 8})
