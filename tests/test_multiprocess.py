"""Two processes on CPU (gloo), launched the way users launch several GPUs: `accelerate launch --multi_gpu
--num_processes 2 -m distilkit ...`. One run folder, the teacher cache built once, metrics over the whole test
split, and resume after a crash in the middle of an epoch."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import topic_rows, write_csv
from safetensors.torch import load_file

LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
LAUNCH += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "distilkit"]
QUICK = ["--batch-size", "8", "--warmup", "0", "--logging-steps", "5", "--precision", "fp32"]

# Imported by distilkit in every process (--plugins): counts training steps and teacher-cache builds per rank,
# and stops both ranks at the same step when CRASH_AT_STEP is set (a crash in one rank alone would leave the
# other waiting in the gradient all-reduce).
PLUGIN = """
import atexit, os, sys
from distilkit.distillation import distiller, setup
counts = {"steps": 0, "built": 0}
compute_loss, build_cache = distiller.Distiller.compute_loss, setup.build_cache
def counted_loss(self, *a, **k):
    counts["steps"] += 1
    if counts["steps"] == int(os.environ.get("CRASH_AT_STEP", "0")):
        raise KeyboardInterrupt
    return compute_loss(self, *a, **k)
def counted_build(*a, **k):
    counts["built"] += 1
    return build_cache(*a, **k)
distiller.Distiller.compute_loss, setup.build_cache = counted_loss, counted_build
atexit.register(lambda: print(f"rank {os.environ['RANK']}: {counts['steps']} steps, {counts['built']} caches built",
                              file=sys.stderr, flush=True))
"""


def launch(args, tmp_path, crash_at=0):
    env = {**os.environ, "CRASH_AT_STEP": str(crash_at), "DISTILKIT_CACHE": str(tmp_path / "cache")}
    env.pop("RANK", None)
    done = subprocess.run([*LAUNCH, *map(str, args)], capture_output=True, text=True, env=env, cwd=tmp_path)
    return done.returncode, done.stdout, done.stderr


def counts(stderr):
    """{rank: (steps, caches built)} from the plugin's lines (they may follow a progress bar on the same line)."""
    found = re.findall(r"rank (\d+): (\d+) steps, (\d+) caches built", stderr)
    return {int(rank): (int(steps), int(built)) for rank, steps, built in found}


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "count_steps.py"
    path.write_text(PLUGIN)
    return path


def test_two_process_distillation_resumes_and_builds_the_cache_once(topic_run, topic_data, plugin, tmp_path):
    out = tmp_path / "ddp"
    args = ["distill", "--teacher", topic_run, "--data", topic_data, "--student", "1", "--output", out]
    args += ["--epochs", "2", "--save-steps", "4", "--plugins", plugin, *QUICK]
    code, stdout, stderr = launch(args, tmp_path, crash_at=10)
    assert code != 0 and not out.exists(), stdout + stderr
    assert (tmp_path / ".ddp.partial" / "checkpoints" / "prediction" / "checkpoint-8").is_dir()
    first = counts(stderr)
    assert first[0] == (10, 1) and first[1] == (10, 0), stderr  # the main process built the cache, the other read it
    code, stdout, stderr = launch(args + ["--resume"], tmp_path)
    assert code == 0, stdout + stderr
    train_rows = 192  # 240 rows split 0.8/0.1/0.1
    steps = 2 * -(-train_rows // (8 * 2))  # two epochs of the data shared by two processes
    assert counts(stderr) == {0: (steps - 8, 0), 1: (steps - 8, 0)}, stderr  # went on from step 8
    assert stdout.count("teacher:") == 1  # only the main process reports
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["examples"] == train_rows
    assert metrics["test"]["student"]["examples"] == 24  # the whole test split, not one process's half
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".ddp", "ddp"))) == ["ddp"]


def test_two_process_finetune_and_general_distillation(tiny_model, plugin, tmp_path):
    data = write_csv(tmp_path / "topics.csv", topic_rows(120, seed=2))
    code, stdout, stderr = launch(
        ["finetune", "--model", tiny_model, "--data", data, "--output", tmp_path / "ft", "--epochs", "1", *QUICK],
        tmp_path,
    )
    assert code == 0, stdout + stderr
    assert json.loads((tmp_path / "ft" / "metrics.json").read_text())["test"]["examples"] == 12
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(r["text"] for r in topic_rows(200, seed=3)) + "\n")
    args = ["distill", "--general", "--method", "tinybert", "--teacher", tiny_model, "--data", corpus]
    # a narrower student than the teacher (16 vs 32 wide): the hidden and embedding losses need the learned
    # projections, which must train under the DistributedDataParallel wrapper too
    args += ["--student", "1L-16H-2A-32F", "--max-length", "16", "--epochs", "1", "--plugins", plugin, *QUICK]
    code, stdout, stderr = launch([*args, "--output", tmp_path / "general"], tmp_path)
    assert code == 0, stdout + stderr
    metrics = json.loads((tmp_path / "general" / "metrics.json").read_text())
    blocks = metrics["train"]["examples"]
    assert counts(stderr) == {0: (-(-blocks // 16), 1), 1: (-(-blocks // 16), 0)}, stderr


def test_two_process_intermediate_from_gives_the_full_runs_student(topic_run, topic_data, plugin, tmp_path):
    args = ["distill", "--teacher", topic_run, "--data", topic_data, "--student", "1L-16H-2A-32F"]
    args += ["--method", "tinybert", "--intermediate-epochs", "1", "--epochs", "1", "--plugins", plugin, *QUICK]
    code, stdout, stderr = launch([*args, "--output", tmp_path / "full"], tmp_path)
    assert code == 0, stdout + stderr
    steps_per_stage = -(-192 // (8 * 2))  # 192 train rows shared by two processes, batch 8 each
    assert counts(stderr) == {0: (2 * steps_per_stage, 1), 1: (2 * steps_per_stage, 0)}, stderr
    reuse = [*args, "--output", tmp_path / "again", "--intermediate-from", tmp_path / "full"]
    code, stdout, stderr = launch(reuse, tmp_path)
    assert code == 0, stdout + stderr
    assert counts(stderr) == {0: (steps_per_stage, 0), 1: (steps_per_stage, 0)}, stderr  # the prediction stage only
    full, again = (load_file(tmp_path / run / "model" / "model.safetensors") for run in ("full", "again"))
    assert full.keys() == again.keys() and all(torch.equal(full[k], again[k]) for k in full)
    stage = "stage-intermediate.safetensors"
    assert (tmp_path / "again" / stage).read_bytes() == (tmp_path / "full" / stage).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if "again" in p.name) == ["again"]  # no partial folder left
