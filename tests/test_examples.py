"""The examples run as users run them (a subprocess each), on the tiny model and small CSV files.

examples/hf_trainer_finetune.py → hf_trainer_distill.py (three lines apart), own_loop.py (distilkit's losses in a
plain PyTorch loop), ten_lines.py (teacher → student → int8 → evaluated through the Python API)."""

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import topic_rows, write_csv

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def csvs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("example-data")
    return (
        write_csv(folder / "train.csv", topic_rows(240, seed=11)),
        write_csv(folder / "dev.csv", topic_rows(30, seed=12)),
        write_csv(folder / "test.csv", topic_rows(30, seed=13)),
    )


def run_example(name: str, *args, cwd: Path) -> str:
    env = {**os.environ, "DISTILKIT_TRACEBACK": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def code_lines(path: Path) -> list[str]:
    """The lines of a script after its module docstring."""
    text = path.read_text()
    return text[text.index('"""', 3) + 3 :].splitlines()


def test_distillation_is_three_lines_away_from_a_plain_trainer_script():
    plain, distil = code_lines(EXAMPLES / "hf_trainer_finetune.py"), code_lines(EXAMPLES / "hf_trainer_distill.py")
    changed = [ln for ln in difflib.ndiff(plain, distil) if ln.startswith("+ ")]
    assert len(changed) == 3 and len(plain) == len(distil), "\n".join(changed)


def test_the_trainer_examples_fine_tune_then_distil(tiny_model, csvs, tmp_path):
    train, dev, _ = csvs
    common = ["--train", train, "--dev", dev, "--epochs", "10", "--lr", "3e-3"]
    out = run_example(
        "hf_trainer_finetune.py", "--model", tiny_model, *common, "--output", tmp_path / "teacher", cwd=tmp_path
    )
    teacher_accuracy = eval(out.strip().splitlines()[-1])["eval_accuracy"]  # the script prints trainer.evaluate()
    out = run_example(
        "hf_trainer_distill.py", "--model", tmp_path / "teacher", *common, "--output", tmp_path / "s", cwd=tmp_path
    )
    student_accuracy = eval(out.strip().splitlines()[-1])["eval_accuracy"]
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert config["num_hidden_layers"] == 1 and teacher_accuracy >= 0.8 and student_accuracy >= 0.6, (
        teacher_accuracy,
        student_accuracy,
    )
    assert not any("projection" in name for name in os.listdir(tmp_path / "s"))


def test_own_loop_distils_with_hidden_and_attention_losses(topic_run, csvs, tmp_path):
    train, _, _ = csvs
    out = run_example(
        "own_loop.py", "--teacher", topic_run / "model", "--data", train, "--output", tmp_path / "s", cwd=tmp_path
    )
    losses = [float(line.split("loss")[1]) for line in out.splitlines() if line.startswith("epoch")]
    assert len(losses) == 2 and all(x == x for x in losses)  # finite (NaN != NaN)
    assert (tmp_path / "s" / "model.safetensors").is_file()


def test_ten_lines_runs_the_whole_path(tiny_model, csvs, tmp_path):
    train, _, test = csvs
    args = ["--model", tiny_model, "--data", train, "--test", test, "--student", "1", "--epochs", "10", "--lr", "1e-3"]
    out = run_example("ten_lines.py", *args, "--output", tmp_path / "run", cwd=tmp_path)
    scores = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in out.strip().splitlines()[-3:]}
    assert set(scores) == {"teacher", "student", "student int8"} and scores["teacher"] >= 0.8
    assert (tmp_path / "run" / "student-int8" / "model.onnx").is_file()
