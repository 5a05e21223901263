"""Benchmark: distil the fine-tuned MiniLM-L6 teachers into small students on real data.

    python benchmarks/distill_builtin.py [--only NAME ...]

Needs the teachers from benchmarks/finetune_builtin.py (benchmarks/runs/minilm-l6-{bbc-news,brown-pos}).
Jobs:
- bbc-tinybert-3L: 3-layer student initialised from teacher layers 0,2,4, TinyBERT method (two stages);
- bbc-tinybert-4L312: TinyBERT-4-shaped student (4L-312H-12A-1200F), random init, TinyBERT method;
- brown-tinybert-3L: token classification (POS), 3-layer student from teacher layers, TinyBERT method, on the
  same 10,000-sentence training sample the teacher saw, tested on the full test split.
Writes benchmarks/results/distill_builtin.json: teacher and student test scores, retention, agreement,
parameters, wall time.
"""

from __future__ import annotations

import argparse
import tempfile

from common import RUNS, metrics, run_distilkit, save, shown

TEACHERS = {"bbc": RUNS / "minilm-l6-bbc-news", "brown": RUNS / "minilm-l6-brown-pos"}
COMMON = ["--threads", "2", "--batch-size", "32", "--max-length", "128", "--overwrite"]
JOBS = {
    "bbc-tinybert-3L": [
        "--teacher",
        TEACHERS["bbc"],
        "--data",
        "bbc-news",
        "--student",
        "3",
        "--method",
        "tinybert",
        "--intermediate-epochs",
        "3",
        "--epochs",
        "3",
        "--lr",
        "1e-4",
    ],
    "bbc-tinybert-4L312": [
        "--teacher",
        TEACHERS["bbc"],
        "--data",
        "bbc-news",
        "--student",
        "4L-312H-12A-1200F",
        "--layer-map",
        "0:0,1:2,2:3,3:4,4:6",
        "--method",
        "tinybert",
        "--intermediate-epochs",
        "6",
        "--epochs",
        "4",
        "--lr",
        "5e-4",
    ],
    "brown-tinybert-3L": [
        "--teacher",
        TEACHERS["brown"],
        "--data",
        "brown-pos",
        "--max-train-samples",
        "10000",
        "--student",
        "3",
        "--method",
        "tinybert",
        "--intermediate-epochs",
        "2",
        "--epochs",
        "2",
        "--lr",
        "1e-4",
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=list(JOBS))
    args = parser.parse_args()
    cache = tempfile.mkdtemp(prefix="distilkit-bench-cache-")
    for name in args.only or list(JOBS):
        output = RUNS / name
        argv = ["distill", *JOBS[name], "--output", output, "--cache-dir", cache, *COMMON]
        wall = run_distilkit(argv)
        m = metrics(output)
        test = m["test"]
        key = test["metric"]
        result = {
            "command": shown(argv).replace(f"--cache-dir {cache} ", ""),
            "metric": key,
            "teacher_test": round(test["teacher"][key], 4),
            "student_test": round(test["student"][key], 4),
            "retention": round(test["retention"], 4),
            "agreement": round(test["agreement"], 4),
            "teacher_parameters": m["teacher_parameters"],
            "student_parameters": m["parameters"],
            "wall_seconds": round(wall, 1),
            "stage_timings": m["train"]["stages"],
            "train_examples": m["train"]["examples"],
            "test_examples": test["student"]["examples"],
        }
        save("distill_builtin", name, result)
        print(
            f"\n{name}: teacher {result['teacher_test']:.4f}  student {result['student_test']:.4f}  "
            f"retention {100 * result['retention']:.1f}%  params {result['student_parameters'] / 1e6:.1f}M  "
            f"{result['wall_seconds']:.0f} s\n"
        )


if __name__ == "__main__":
    main()
