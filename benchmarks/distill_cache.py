"""Benchmark: the teacher-output cache. Wall time per epoch of logit KD with the cache, without it, and of
fine-tuning the same student alone on labels.

    python benchmarks/distill_cache.py [--epochs 2] [--rounds 2]

bbc-news, teacher benchmarks/runs/minilm-l6-bbc-news (from finetune_builtin.py), student = teacher layers
0,2,4, `--method kd`. The three set-ups run interleaved, `--rounds` times; the first cached run builds the
cache (its build time is reported apart), later ones reuse it. Epoch times exclude evaluation.
Target: a cached epoch costs ≤ 1.15x a student-only epoch. Writes benchmarks/results/distill_cache.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from common import RUNS, metrics, run_distilkit, save, shown

TEACHER = RUNS / "minilm-l6-bbc-news"
COMMON = [
    "--data",
    "bbc-news",
    "--threads",
    "2",
    "--batch-size",
    "32",
    "--max-length",
    "128",
    "--lr",
    "1e-4",
    "--overwrite",
]


def student_init_folder() -> Path:
    """The 3-layer student initialised from teacher layers, saved so `finetune` can start from it."""
    from distilkit.distillation.students import build_student
    from distilkit.inference.loading import load_trained

    teacher = load_trained(str(TEACHER))
    student, _ = build_student("3", teacher.model, teacher.task)
    folder = RUNS / "student-3L-init"
    student.save_pretrained(folder)
    teacher.tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="distilkit-cache-bench-"))
    init = student_init_folder()
    epochs = ["--epochs", str(args.epochs)]
    setups = {
        "kd_cached": [
            "distill",
            "--teacher",
            TEACHER,
            "--student",
            "3",
            "--method",
            "kd",
            "--cache-dir",
            cache,
            "--output",
            RUNS / "cache-kd-cached",
            *epochs,
            *COMMON,
        ],
        "kd_no_cache": [
            "distill",
            "--teacher",
            TEACHER,
            "--student",
            "3",
            "--method",
            "kd",
            "--cache",
            "false",
            "--output",
            RUNS / "cache-kd-live",
            *epochs,
            *COMMON,
        ],
        "student_only": ["finetune", "--model", init, "--output", RUNS / "cache-student-only", *epochs, *COMMON],
    }
    epoch_times = {k: [] for k in setups}
    cache_build = None
    for _ in range(args.rounds):
        for name, argv in setups.items():
            run_distilkit(argv)
            m = metrics(Path(argv[argv.index("--output") + 1]))
            if name == "student_only":
                epoch_times[name] += m["train"]["epoch_seconds"]
            else:
                stage = m["train"]["stages"]["prediction"]
                epoch_times[name] += stage["epoch_seconds"]
                if name == "kd_cached" and cache_build is None:
                    cache_build = stage["cache_seconds"]
    shutil.rmtree(cache, ignore_errors=True)
    medians = {k: statistics.median(v) for k, v in epoch_times.items()}
    result = {
        "commands": {k: shown(v).replace(f"--cache-dir {cache} ", "") for k, v in setups.items()},
        "epoch_seconds": epoch_times,
        "median_epoch_seconds": {k: round(v, 1) for k, v in medians.items()},
        "cache_build_seconds": cache_build,
        "cached_vs_student_only": round(medians["kd_cached"] / medians["student_only"], 3),
        "live_teacher_vs_student_only": round(medians["kd_no_cache"] / medians["student_only"], 3),
    }
    path = save("distill_cache", "bbc-news-kd-3L", result)
    for k, v in medians.items():
        print(f"{k:<14} median epoch {v:6.1f} s   {epoch_times[k]}")
    print(
        f"cache build {cache_build} s; cached/student-only = {result['cached_vs_student_only']}x; "
        f"live/student-only = {result['live_teacher_vs_student_only']}x → {path}"
    )


if __name__ == "__main__":
    main()
