"""Benchmark: size, latency, throughput and accuracy of compressed models on bbc-news.

    python benchmarks/compress.py [--skip-build] [--rounds N]

Needs the teacher from benchmarks/finetune_builtin.py (runs/minilm-l6-bbc-news) and the student from
benchmarks/distill_builtin.py (runs/bbc-tinybert-3L). Builds, under benchmarks/runs/compress/:
- for teacher and student: ONNX fp32 export, ONNX Runtime int8 dynamic and static (QDQ), torchao int8;
- teacher with 30% and 50% of its attention heads pruned (global Michel importance), each without recovery
  and with 2 epochs of distillation from the unpruned teacher; the 50% recovered one also exported + int8.
Then times every variant in one process, interleaved round by round (torch and ONNX Runtime both on 2 threads,
ORT thread spinning off so neither steals the other's cores): latency at batch 1 and throughput at batch 32,
on real test articles truncated to 128 tokens (every BBC article is longer, so no padding); medians.
Accuracy is on the full test split. Writes benchmarks/results/compress.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from common import RUNS, run_distilkit, save

from distilkit.evaluation.bench import caller, weights_bytes
from distilkit.evaluation.evaluate import score_rows, split_rows_for
from distilkit.evaluation.options import EvaluateConfig
from distilkit.inference.loading import load_trained

OUT = RUNS / "compress"
MODELS = {"teacher": RUNS / "minilm-l6-bbc-news", "student": RUNS / "bbc-tinybert-3L"}


def build() -> None:
    for name, run in MODELS.items():
        run_distilkit(["export", "--model", run, "--output", OUT / f"{name}-onnx", "--overwrite"])
        for method in ("dynamic", "static"):
            run_distilkit(
                [
                    "quantize",
                    "--model",
                    OUT / f"{name}-onnx",
                    "--method",
                    method,
                    "--output",
                    OUT / f"{name}-int8-{method}",
                    "--overwrite",
                ]
            )
        run_distilkit(
            ["quantize", "--model", run, "--method", "torchao", "--output", OUT / f"{name}-int8-torchao", "--overwrite"]
        )
    for share in ("0.3", "0.5"):
        tag = share[2:] + "0"
        common = ["prune", "--model", MODELS["teacher"], "--heads", share, "--overwrite"]
        run_distilkit([*common, "--output", OUT / f"teacher-heads{tag}"])
        run_distilkit(
            [
                *common,
                "--output",
                OUT / f"teacher-heads{tag}-kd",
                "--recover",
                "distill",
                "--recover-epochs",
                "2",
                "--recover-lr",
                "5e-5",
            ]
        )
    best = OUT / "teacher-heads50-kd"
    run_distilkit(["export", "--model", best, "--output", OUT / "teacher-heads50-kd-onnx", "--overwrite"])
    run_distilkit(
        [
            "quantize",
            "--model",
            OUT / "teacher-heads50-kd-onnx",
            "--output",
            OUT / "teacher-heads50-kd-int8-dynamic",
            "--overwrite",
        ]
    )


def variants() -> dict[str, Path]:
    out = {}
    for name, run in MODELS.items():
        out[f"{name} fp32 torch"] = run
        out[f"{name} fp32 onnx"] = OUT / f"{name}-onnx"
        for method in ("dynamic", "static", "torchao"):
            out[f"{name} int8 {method}"] = OUT / f"{name}-int8-{method}"
    for tag in ("30", "50"):
        out[f"teacher heads-{tag}% torch"] = OUT / f"teacher-heads{tag}"
        out[f"teacher heads-{tag}% +kd torch"] = OUT / f"teacher-heads{tag}-kd"
    out["teacher heads-50% +kd int8 dynamic"] = OUT / "teacher-heads50-kd-int8-dynamic"
    return out


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-build", action="store_true", help="reuse the folders of an earlier run")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if not args.skip_build:
        build()

    loaded = {name: load_trained(str(path)) for name, path in variants().items()}
    teacher = loaded["teacher fp32 torch"]
    opts = EvaluateConfig(model=str(MODELS["teacher"]), data="bbc-news")
    data, _, test_rows = split_rows_for(teacher, opts, "test")
    texts = [r["text"] for r in test_rows]

    def enc(n):
        return dict(
            teacher.tokenizer(texts[:n], truncation=True, max_length=128, padding="max_length", return_tensors="pt")
        )

    b1, b32 = enc(1), enc(32)
    assert int(b32["attention_mask"].sum()) == 32 * 128  # real articles fill all 128 positions
    calls = {name: (partial(caller(t, "torch"), b1), partial(caller(t, "torch"), b32)) for name, t in loaded.items()}
    for one, many in calls.values():  # warm-up: first calls allocate and pick kernels
        one(), many()
    lat = {name: [] for name in calls}
    thr = {name: [] for name in calls}
    for r in range(args.rounds):  # interleaved: every variant once per round, so drift hits all alike
        for name, (one, many) in calls.items():
            lat[name].append(timed(one))
            if r % 4 == 0:
                thr[name].append(timed(many))

    results = {}
    base_lat = {m: statistics.median(lat[f"{m} fp32 torch"]) for m in MODELS}
    for name, trained in loaded.items():
        metrics, _ = score_rows(trained, data, test_rows, 128, 32)
        owner = name.split()[0]
        latency = statistics.median(lat[name])
        row = {
            "path": str(variants()[name].relative_to(RUNS.parent.parent)),
            "weights_mb": round(weights_bytes(str(variants()[name])) / 1e6, 1),
            "latency_b1_ms": round(1000 * latency, 2),
            "throughput_b32_per_s": round(32 / statistics.median(thr[name]), 1),
            "speedup_vs_fp32_torch_b1": round(base_lat[owner] / latency, 2),
            "test_accuracy": round(metrics["accuracy"], 4),
        }
        metrics_file = variants()[name] / "metrics.json"
        m = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        if "macs_ratio" in m:
            row["macs_ratio"] = round(m["macs_ratio"], 3)
            row["latency_ratio"] = round(latency / base_lat["teacher"], 3)
            row["heads_per_layer"] = m["pruned"]["attention_heads"]
        results[name] = row
        print(
            f"{name:40s} {row['weights_mb']:7.1f} MB {row['latency_b1_ms']:7.2f} ms "
            f"{row['throughput_b32_per_s']:7.1f}/s x{row['speedup_vs_fp32_torch_b1']:.2f} acc {row['test_accuracy']}"
            + (f" MACs {row['macs_ratio']} latency {row['latency_ratio']}" if "macs_ratio" in row else "")
        )
    save(
        "compress",
        "bbc-news",
        {"rounds": args.rounds, "seq_len": 128, "threads": 2, "variants": results, "test_examples": len(test_rows)},
    )


if __name__ == "__main__":
    np.random.seed(0)
    main()
