"""Benchmark: graph changes for the int8 student's speed, on vs off, and the 12-layer teacher → int8 4L-312 speed-up.

    make mpnet && python benchmarks/onnx_fusions.py [--compare skip-ln|patches|settle|first-token|sdpa]
        [--rounds 30] [--repeats 3]

Latency does not depend on the weights' values, so this needs no training: it builds, under
benchmarks/runs/fusions/, all-mpnet-base-v2 (12L-768H, the TinyBERT benchmark's teacher) and the packaged
MiniLM-L6 with new 5-label heads, and a random-init MPNet student of the TinyBERT-4 shape (4L-312H-12A-1200F).
Each student is exported with `distilkit export` (since this change: residual Add + LayerNormalization left
unfused), copied with ONNX Runtime's SkipLayerNormalization fusion applied (what export wrote before), and both
graphs are int8-quantized with `distilkit quantize --method dynamic`. Then `distilkit bench` times the fp32
teacher (PyTorch) and the int8 graphs interleaved, batch 1, real bbc-news test articles cut to 128 tokens, 2
threads, --repeats runs of --rounds rounds; the JSON (benchmarks/results/onnx_fusions.json, key skip-ln) keeps
every run and the medians.

`--compare patches` (key export-patches) times the MPNet student exported with `--patches false` (its own code
traced: relative-position buckets and the padding mask recomputed on every run; 135 fp32 nodes) against the
default export (compress/export_patches.py: a position-bias table, a one-step padding mask; 101 nodes), both int8
dynamic; the JSON records both node counts.

`--compare settle` (key bench-settle) benches the teacher and two int8 graphs of the patched student, as export and
quantize wrote them before 2026-12-05 (three q/k/v products, BiasGelu, an int8 position-bias lookup) and as
they write them now, with `--settle-ms 0` (each timed call right after the other model's, as bench did before)
and with the default 50, alternating; then times the student's 1st to 12th call after a teacher call.

`--compare first-token` (key first-token) exports both students with export's first-token pass turned off in this
process (every layer on every token, as before 2026-12-05) and on (compress/first_token.py: the last layer after
its attention on the token the classifier reads), both int8 dynamic, and benches them with the teacher.

`--compare sdpa` (key sdpa-attention) does the same for MiniLM-L6 with distilkit's attention fusion off (its SDPA
attention unfused, as before 2026-12-05) and on (MultiHeadAttention, compress/attention_fusion.py).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics

from common import RUNS, run_distilkit, save, shown

OUT = RUNS / "fusions"
LABELS = ["business", "entertainment", "politics", "sport", "tech"]
STUDENTS = ("mpnet-4L312", "minilm-l6")


def build_models() -> None:
    """The teacher and the two students as model folders with a 5-label head (random where untrained)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from distilkit.models import resolve_model

    heads = dict(num_labels=5, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    mpnet, minilm = resolve_model("all-mpnet-base-v2"), resolve_model("minilm-l6")
    torch.manual_seed(0)
    for name, source in (("teacher", mpnet), ("minilm-l6", minilm)):
        model = AutoModelForSequenceClassification.from_pretrained(source, **heads)
        model.save_pretrained(OUT / name)
        AutoTokenizer.from_pretrained(source).save_pretrained(OUT / name)
    shape = dict(num_hidden_layers=4, hidden_size=312, num_attention_heads=12, intermediate_size=1200)
    config = AutoConfig.from_pretrained(mpnet, **shape, **heads)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(OUT / "mpnet-4L312")
    AutoTokenizer.from_pretrained(mpnet).save_pretrained(OUT / "mpnet-4L312")


def with_skip_layernorm(src, dst) -> int:
    """A copy of an exported ONNX folder with ONNX Runtime's SkipLayerNormalization fusion applied."""
    from onnxruntime.transformers.optimizer import optimize_model

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    with contextlib.redirect_stdout(io.StringIO()):
        fused = optimize_model(str(src / "model.onnx"), model_type="bert", num_heads=0, hidden_size=0)
    fused.save_model_to_file(str(dst / "model.onnx"))
    return sum(n.op_type == "SkipLayerNormalization" for n in fused.model.graph.node)


def build_graphs() -> dict:
    """For each student: exported (unfused) and SkipLayerNorm-fused graphs, both int8. Returns the node counts."""
    counts = {}
    for student in STUDENTS:
        onnx = OUT / f"{student}-onnx"
        run_distilkit(["export", "--model", OUT / student, "--data", "bbc-news", "--output", onnx, "--overwrite"])
        counts[student] = with_skip_layernorm(onnx, OUT / f"{student}-onnx-skipln")
        for variant in ("onnx", "onnx-skipln"):
            argv = ["quantize", "--model", OUT / f"{student}-{variant}", "--method", "dynamic", "--data", "bbc-news"]
            run_distilkit([*argv, "--output", OUT / f"{student}-int8-{variant[5:] or 'unfused'}", "--overwrite"])
    return counts


def build_patch_graphs() -> dict:
    """The MPNet student exported without and with distilkit's export patches, both int8. Returns node counts."""
    import onnx

    nodes = {}
    for variant, flag in (("unpatched", "false"), ("patched", "true")):
        onnx_dir = OUT / f"mpnet-4L312-onnx-{variant}"
        argv = ["export", "--model", OUT / "mpnet-4L312", "--data", "bbc-news", "--patches", flag]
        run_distilkit([*argv, "--output", onnx_dir, "--overwrite"])
        nodes[variant] = len(onnx.load(str(onnx_dir / "model.onnx")).graph.node)
        argv = ["quantize", "--model", onnx_dir, "--method", "dynamic", "--data", "bbc-news"]
        run_distilkit([*argv, "--output", OUT / f"mpnet-4L312-int8-{variant}", "--overwrite"])
    return nodes


def export_int8(model, onnx_dir, int8_dir, *turned_off) -> dict:
    """`distilkit export` of `model`, then `quantize --method dynamic`, with the `turned_off` mock.patch objects
    active for both (each turns a graph change off in this process only). Returns the export's fused operators."""
    with contextlib.ExitStack() as stack:
        for patch in turned_off:
            stack.enter_context(patch)
        run_distilkit(["export", "--model", model, "--data", "bbc-news", "--output", onnx_dir, "--overwrite"])
        argv = ["quantize", "--model", onnx_dir, "--method", "dynamic", "--data", "bbc-news", "--output", int8_dir]
        run_distilkit([*argv, "--overwrite"])
    return json.loads((onnx_dir / "distilkit_onnx.json").read_text())["fused_operators"]


def build_first_token_graphs() -> dict:
    """Each student exported with the first-token pass off and on, both int8. Returns how many nodes it moved."""
    from unittest import mock

    moved = {}
    for student in STUDENTS:
        for variant in ("all-tokens", "first-token"):
            off = [mock.patch("distilkit.compress.export.compute_first_token_only", lambda model: 0)]
            dirs = OUT / f"{student}-onnx-{variant}", OUT / f"{student}-int8-{variant}"
            fused = export_int8(OUT / student, *dirs, *(off if variant == "all-tokens" else []))
            moved[f"{student}-{variant}"] = fused.get("FirstTokenOnly", 0)
    return moved


def build_sdpa_graphs() -> dict:
    """MiniLM-L6 exported with distilkit's attention fusion off and on, both int8. Returns the fused operators."""
    from unittest import mock

    fused = {}
    for variant in ("unfused-attention", "fused-attention"):
        off = [mock.patch("distilkit.compress.export.fuse_biased_attention", lambda model, heads: {})]
        dirs = OUT / f"minilm-l6-onnx-{variant}", OUT / f"minilm-l6-int8-{variant}"
        fused[variant] = export_int8(OUT / "minilm-l6", *dirs, *(off if variant == "unfused-attention" else []))
    return fused


def bench_once(models: list, rounds: int, settle_ms: int | None = None) -> tuple[str, dict]:
    out = OUT / "bench.json"
    argv = ["bench", *models, "--data", "bbc-news", "--max-length", "128", "--threads", "2"]
    argv += ["--rounds", str(rounds), "--memory", "false", "--output", out]
    argv += [] if settle_ms is None else ["--settle-ms", str(settle_ms)]
    run_distilkit(argv)
    rows = json.loads(out.read_text())["models"]
    return shown(argv), {r["model"]: {"p50_ms": r["latency_p50_ms"], "speedup": r["speedup"]} for r in rows}


def medians_of(runs: list[dict]) -> dict:
    """Per model, the median over runs of bench_once's p50 and speed-up."""
    return {
        name: {k: round(statistics.median(r[name][k] for r in runs), 2) for k in ("p50_ms", "speedup")}
        for name in runs[0]
    }


def calls_after_switch(teacher, student, rounds: int, calls: int = 12) -> list[float]:
    """Median ms of the student's 1st, 2nd, ... call right after the teacher's (one process, like bench)."""
    import time

    import numpy as np
    import torch

    from distilkit.evaluation.bench import caller, input_batches
    from distilkit.evaluation.options import BenchConfig
    from distilkit.inference.loading import load_trained

    torch.set_num_threads(2)
    os.environ["DISTILKIT_ORT_THREADS"] = "2"  # as bench --threads 2 sets it
    loaded = [load_trained(str(m)) for m in (teacher, student)]
    singles, _ = input_batches(loaded[0].tokenizer, BenchConfig(data="bbc-news", max_length=128))
    run_teacher, run_student = (caller(t, "onnx" if i else "torch") for i, t in enumerate(loaded))
    times = []
    for r in range(rounds):
        batch = singles[r % len(singles)]
        run_teacher(batch)
        row = []
        for _ in range(calls):
            start = time.perf_counter()
            run_student(batch)
            row.append(1000 * (time.perf_counter() - start))
        times.append(row)
    return [round(float(x), 2) for x in np.median(times, axis=0)]


def build_graph_as_before() -> None:
    """The student's int8 graph as distilkit wrote it before three changes of 2026-12-05, which are turned off in
    this process only: q, k, v as three products (attention_fusion's merge), Add + Gelu fused into BiasGelu at
    export, the position-bias lookup int8 (quantize's attention_bias_nodes)."""
    from unittest import mock

    from onnxruntime.transformers import fusion_options

    class BiasGeluOptions(fusion_options.FusionOptions):
        def __setattr__(self, name, value):
            super().__setattr__(name, True if name == "enable_bias_gelu" else value)

    export_int8(
        OUT / "mpnet-4L312",
        OUT / "mpnet-4L312-onnx-before",
        OUT / "mpnet-4L312-int8-before",
        mock.patch("distilkit.compress.attention_fusion._merge_projections", lambda *args: []),
        mock.patch.object(fusion_options, "FusionOptions", BiasGeluOptions),
        mock.patch("distilkit.compress.quantize.attention_bias_nodes", lambda graph: []),
    )


def compare_settle(args) -> None:
    """bench --settle-ms 0 (each call right after the other model's) vs the default, alternating, with the
    student's int8 graph as written before the 2026-12-05 changes and now; then the student's latency by
    position after a teacher call."""
    build_patch_graphs()
    build_graph_as_before()
    models = [OUT / "teacher", OUT / "mpnet-4L312-int8-before", OUT / "mpnet-4L312-int8-patched"]
    runs = {"settle_0": [], "settle_50": []}
    for _ in range(args.repeats):
        for settle_ms in (0, 50):
            command, run = bench_once(models, args.rounds, settle_ms)
            runs[f"settle_{settle_ms}"].append(run)
            print(settle_ms, json.dumps(run), flush=True)
    medians = {key: medians_of(done) for key, done in runs.items()}
    positions = calls_after_switch(models[0], models[-1], args.rounds)
    print("student ms by call after a teacher call:", positions)
    result = {"command": command, "rounds": args.rounds, "runs": runs, "medians": medians}
    save("onnx_fusions", "bench-settle", {**result, "student_ms_by_call_after_teacher": positions})
    print(json.dumps(medians, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", choices=["skip-ln", "patches", "settle", "first-token", "sdpa"], default="skip-ln")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    build_models()
    if args.compare == "settle":
        return compare_settle(args)
    if args.compare == "skip-ln":
        key, built = "skip-ln", {"skip_layernorm_nodes": build_graphs()}
        students = [OUT / f"{s}-int8-{v}" for s in STUDENTS for v in ("skipln", "unfused")]
    elif args.compare == "first-token":
        key, built = "first-token", {"first_token_nodes": build_first_token_graphs()}
        students = [OUT / f"{s}-int8-{v}" for s in STUDENTS for v in ("all-tokens", "first-token")]
    elif args.compare == "sdpa":
        key, built = "sdpa-attention", {"fused_operators": build_sdpa_graphs()}
        students = [OUT / f"minilm-l6-int8-{v}" for v in ("unfused-attention", "fused-attention")]
    else:
        key, built = "export-patches", {"onnx_nodes_fp32": build_patch_graphs()}
        students = [OUT / f"mpnet-4L312-int8-{v}" for v in ("unpatched", "patched")]
    models = [OUT / "teacher", *students]
    runs = []
    for _ in range(args.repeats):
        command, run = bench_once(models, args.rounds)
        runs.append(run)
        print(json.dumps(run), flush=True)
    medians = medians_of(runs)
    result = {"command": command, "rounds": args.rounds, **built, "runs": runs}
    save("onnx_fusions", key, {**result, "medians": medians})
    print(json.dumps(medians, indent=1))


if __name__ == "__main__":
    main()
