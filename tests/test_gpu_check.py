"""benchmarks/gpu_check.py without a GPU: it says so, runs every case on a tiny model and exits 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "gpu_check.py"


def test_gpu_check_dry_run_on_cpu(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # as on a machine without a GPU
    done = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no CUDA device here" in done.stdout
    result = json.loads(done.stdout[done.stdout.index("{\n") :])
    assert result["device"] == "cpu (dry run)"
    cases = {**result["distill"], **result["finetune"]}
    assert set(result["distill"]) == {
        "kd fp32 cache off",
        "kd fp32 cache on",
        "kd fp32 cache reuse",
        "textbrewer-job distilkit fp32",
    }
    assert all(case["samples_per_second"] > 0 for case in cases.values())
    assert all(case["texts_per_second"] > 0 for case in result["serve_engine"].values())
    assert "installed" in result["textbrewer"]
    assert not list(tmp_path.iterdir())  # a dry run writes nothing (its work folder is a removed temp folder)
