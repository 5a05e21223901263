"""`distilkit bench`: models measured side by side, interleaved in one process, so the ratios are fair.

Every timed round runs each model once at batch 1 (latency) and, every few rounds, once at `--batch-size`
(throughput); slow drift of the machine (thermal, other processes) then hits all models alike. Each timed call
comes after `--settle-ms` of untimed calls of the same model: right after another model, a call runs while that
model's worker threads still spin (torch's OpenMP threads keep spinning for milliseconds after their work) and
its own data is out of the caches, a state no deployed model, alone in its process, is ever in. Measured on a
4-layer int8 ONNX student timed right after a 12-layer torch teacher: 6.2 ms for the first call, 5.1 for the
second, ~4.9 from the third on (benchmarks/onnx_fusions.py --compare settle). ONNX Runtime's thread spinning
is off (see onnx_model.session_options), or it steals the cores torch needs in the next call.
Peak memory comes from a separate process per model (load + one batch), since one process's peak mixes all.
FLOPs per example come from the config (pruned shapes included), for comparing measured and theoretical speed-up.

Interleaving cannot make numbers taken on a busy machine true, so the timings are judged (`judge_timings`):
they are flagged as untrustworthy when other processes were running (the 1-minute load average, sampled just
before and just after the timed rounds, above the cores available plus a margin) or when the spread is wide
(p95 more than SPREAD_LIMIT times p50: some calls were held up). The flags go into the printed table, the JSON
and the report, which then claims no speed-up.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distilkit.console import show
from distilkit.errors import DistilkitError
from distilkit.evaluation.options import BenchConfig
from distilkit.files import folder_bytes, write_json
from distilkit.inference.embedding import OnnxEmbedder, is_embedding_model, load_embedder
from distilkit.inference.onnx_model import ONNX_FILE, OnnxClassifier, is_onnx_folder, read_meta
from distilkit.models import max_positions, native_bf16, read_config_dict, resolve_model
from distilkit.models.validate import fit_max_length
from distilkit.runs import check_new_file


@dataclass
class Variant:
    label: str
    path: str  # what load_trained takes
    backend: str  # torch, torch-bf16, onnx


def variants_for(models: list[str], backend: str) -> list[Variant]:
    if (
        backend in ("auto", "onnx")
        and importlib.util.find_spec("onnxruntime") is None
        and (backend == "onnx" or any(is_onnx_folder(m) for m in models))
    ):
        raise DistilkitError("the onnx backend needs ONNX Runtime, which is not installed: pip install onnxruntime")
    if backend == "torch-bf16" and not native_bf16():
        raise DistilkitError(
            "--backend torch-bf16: this machine has no native bf16 (no CUDA bf16, no AMX or "
            "AVX512-BF16 CPU), where bf16 is slower than fp32; use --backend torch or onnx"
        )
    out = []
    for m in models:
        name = Path(m).name if Path(m).name != "model" else Path(m).parent.name
        if is_onnx_folder(m):
            out.append(Variant(name, m, "onnx"))
            continue
        if backend == "onnx":
            onnx_dir = Path(m) / "onnx"
            if not is_onnx_folder(onnx_dir):
                raise DistilkitError(f"{m}: no ONNX export at {onnx_dir}; run distilkit export --model {m} first")
            out.append(Variant(name, str(onnx_dir), "onnx"))
            continue
        out.append(Variant(name, m, "torch"))
        if backend == "torch-bf16":
            out.append(Variant(f"{name} bf16", m, "torch-bf16"))
    return out


def model_folder(path: str) -> Path:
    return Path(path) if is_onnx_folder(path) else Path(resolve_model(path))


def weights_bytes(path: str) -> int:
    """Bytes of the weight files a deployment ships (ONNX graph or safetensors), tokenizer excluded."""
    folder = model_folder(path)
    files = [f for f in folder.iterdir() if f.suffix in (".onnx", ".safetensors", ".bin", ".data")]
    return sum(f.stat().st_size for f in files) if files else folder_bytes(folder)


def flops_per_example(path: str, seq_len: int) -> float | None:
    """2 × multiply-adds of the encoder (projections, FFN, attention scores) and the head, from config.json."""
    c = read_config_dict(str(model_folder(path)))
    hidden = c.get("hidden_size") or c.get("dim")
    layers = c.get("num_hidden_layers") or c.get("n_layers")
    heads = c.get("num_attention_heads") or c.get("n_heads")
    ffn = c.get("intermediate_size") or c.get("hidden_dim")
    if not all((hidden, layers, heads, ffn)):
        return None
    pruned = c.get("distilkit_pruning") or {}
    head_size = pruned.get("head_size", hidden // heads)
    per_layer_heads = pruned.get("attention_heads", [heads] * layers)
    per_layer_ffn = pruned.get("intermediate_sizes", [ffn] * layers)
    macs = 0
    for h, f in zip(per_layer_heads, per_layer_ffn):
        width = h * head_size
        macs += seq_len * (4 * hidden * width + 2 * hidden * f) + 2 * seq_len * seq_len * width
    return 2.0 * macs


def parameter_count(trained) -> int:
    if isinstance(trained.model, (OnnxClassifier, OnnxEmbedder)):
        import onnx

        path = trained.model.path if isinstance(trained.model, OnnxClassifier) else trained.model.folder / ONNX_FILE
        graph = onnx.load(str(path), load_external_data=False).graph
        return int(sum(np.prod(t.dims) for t in graph.initializer if len(t.dims) >= 1))
    return sum(p.numel() for p in trained.model.parameters())


def input_batches(tokenizer, cfg: BenchConfig) -> tuple[list[dict], dict]:
    """Batch-1 inputs (cycled through rounds) and one throughput batch: real texts or synthetic ids."""
    if cfg.data:
        from distilkit.config import DataOptions
        from distilkit.data.dataset import load_task_data

        data = load_task_data(DataOptions(data=cfg.data, max_length=cfg.max_length), for_training=False)
        rows = data.splits.get("test") or next(iter(data.splits.values()))
        texts = [r.get("text") or " ".join(r["tokens"]) for r in rows[: max(cfg.batch_size, 64)]]

        def enc(batch):
            return dict(tokenizer(batch, truncation=True, max_length=cfg.max_length, padding=True, return_tensors="pt"))

        return [enc([t]) for t in texts], enc(texts[: cfg.batch_size])
    vocab = len(tokenizer)
    ids = torch.randint(min(1000, vocab // 2), min(vocab, 20000), (cfg.batch_size, cfg.seq_len))  # skip specials
    full = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    return [{k: v[i : i + 1] for k, v in full.items()} for i in range(cfg.batch_size)], full


def caller(trained, backend: str):
    """A function batch → logits for one backend; inputs the model does not take are dropped."""
    if isinstance(trained.model, OnnxClassifier):
        return lambda batch: trained.model.logits({k: v.numpy() for k, v in batch.items()})
    if isinstance(trained.model, OnnxEmbedder):
        return lambda batch: trained.model.vectors({k: v.numpy() for k, v in batch.items()})
    model = trained.model.eval()
    device = next(model.parameters()).device
    accepted = set(trained.tokenizer.model_input_names)

    def run(batch):
        batch = {k: v.to(device) for k, v in batch.items() if k in accepted}
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=backend == "torch-bf16"):
            return model(**batch).logits

    return run


def peak_rss_kb() -> int:
    """This process's peak resident memory in KiB.

    Linux's VmHWM, not getrusage's ru_maxrss: ru_maxrss survives exec, so a child started by a big process (the
    pipeline after training: 6 GB) would report its parent's peak instead of its own.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB elsewhere


def peak_memory_mb(path: str, backend: str, batch_size: int, seq_len: int) -> float | None:
    """Peak RSS of a fresh process that loads the model and runs one batch (interpreter and libraries included)."""
    code = (
        "import sys, torch; from distilkit.evaluation.bench import caller, load_benched, peak_rss_kb; "
        "t = load_benched(sys.argv[1], None); "
        f"v = len(t.tokenizer); ids = torch.randint(min(1000, v // 2), v, ({batch_size}, {seq_len})); "
        "caller(t, sys.argv[2])({'input_ids': ids, 'attention_mask': torch.ones_like(ids), "
        "'token_type_ids': torch.zeros_like(ids)}); print(peak_rss_kb())"
    )
    done = subprocess.run([sys.executable, "-c", code, path, backend], capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    return round(int(lines[-1]) / 1024, 1) if done.returncode == 0 and lines else None


# p95 above twice p50 means a twentieth of the calls took more than double the typical time: stalls (another
# process, swapping, throttling), not the model. Undisturbed runs here stay near 1.1x (the demo's table in
# docs/benchmarks.md).
SPREAD_LIMIT = 2.0
# The load average counts our own threads too, and a quiet machine hovers a little above them; half a task
# of margin keeps that from raising the flag, while a second busy job on the same cores (load +1 or more) does.
LOAD_MARGIN = 0.5


def machine_load() -> float | None:
    """The 1-minute load average (/proc/loadavg on Linux); None where the OS has none.

    A function of its own so that tests can pretend the machine is busy without burning CPU. In a container it
    is the host's load, so a busy neighbour on other cores can raise the flag too: it errs towards caution.
    """
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def spread_warning(p50_ms: float, p95_ms: float) -> str | None:
    if p50_ms > 0 and p95_ms > SPREAD_LIMIT * p50_ms:
        return (
            f"p95 {p95_ms:.1f} ms is {p95_ms / p50_ms:.1f}x p50 {p50_ms:.1f} ms "
            f"(limit {SPREAD_LIMIT:g}x): some calls were held up"
        )
    return None


def load_warning(before: float | None, after: float | None, cores: int, threads: int) -> str | None:
    """Other processes competed for the cores when the load exceeded what the benchmark itself runs.

    The limit is max(cores, threads) + LOAD_MARGIN: with fewer threads than cores, other tasks may use the
    spare cores without slowing the models; beyond that, someone waits for a core.
    """
    limit = max(cores, threads) + LOAD_MARGIN
    seen = [x for x in (before, after) if x is not None]
    if not seen or max(seen) <= limit:
        return None
    shown = lambda x: "n/a" if x is None else f"{x:.1f}"  # noqa: E731
    return (
        f"machine busy: 1-minute load average {shown(before)} before and {shown(after)} after measuring, "
        f"above {limit:g} ({cores} cores, {threads} threads): other processes took CPU time"
    )


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def judge_timings(
    rows: list[dict], load_before: float | None, load_after: float | None, cores: int, threads: int
) -> dict:
    """Add `trustworthy` and `warnings` to each row; return the summary for the top of the JSON.

    A row's flag covers its own timings; a speed-up also depends on the baseline's (the first row).
    """
    machine = load_warning(load_before, load_after, cores, threads)
    summary = []
    for row in rows:
        spread = spread_warning(row["latency_p50_ms"], row["latency_p95_ms"])
        row["warnings"] = [w for w in (machine, spread) if w]
        row["trustworthy"] = not row["warnings"]
        if spread:
            summary.append(f"{row['model']}: {spread}")
    summary = ([machine] if machine else []) + summary
    return {
        "trustworthy": not summary,
        "warnings": summary,
        "load": {
            "before": _rounded(load_before),
            "after": _rounded(load_after),
            "limit": max(cores, threads) + LOAD_MARGIN,
            "cores": cores,
            "threads": threads,
        },
        "spread_limit": SPREAD_LIMIT,
    }


def settle(call, batch: dict, seconds: float) -> None:
    """Untimed calls of one model for at least `seconds` (none if 0): see the module's docstring for why."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        call(batch)


def timed_rounds(
    calls, singles: list[dict], many: dict, rounds: int, settle_ms: int = 0
) -> tuple[list[list[float]], list[list[float]]]:
    """Seconds per call: batch 1 every round, the throughput batch every few rounds, models interleaved; each
    model's timed calls come after `settle_ms` of its own untimed calls."""
    latency = [[] for _ in calls]
    throughput = [[] for _ in calls]
    every = max(1, rounds // 8)
    for r in range(rounds):
        batch = singles[r % len(singles)]
        for i, call in enumerate(calls):
            settle(call, batch, settle_ms / 1000)
            start = time.perf_counter()
            call(batch)
            latency[i].append(time.perf_counter() - start)
            if r % every == 0:
                start = time.perf_counter()
                call(many)
                throughput[i].append(time.perf_counter() - start)
    return latency, throughput


def model_row(
    v: Variant, trained, lat: list[float], thr: list[float], many: dict, cfg: BenchConfig, seq_len: int
) -> dict:
    flops = flops_per_example(v.path, seq_len)
    meta = read_meta(Path(v.path)) if v.backend == "onnx" else {}
    return {
        "model": v.label,
        "path": v.path,
        "backend": v.backend,
        "precision": (meta.get("quantization") or {}).get("method", "fp32")
        if meta
        else ("bf16" if v.backend == "torch-bf16" else "fp32"),
        "parameters": parameter_count(trained),
        "size_mb": round(weights_bytes(v.path) / 1e6, 2),
        "gflops_per_example": None if flops is None else round(flops / 1e9, 3),
        "latency_p50_ms": round(1000 * statistics.median(lat), 2),
        "latency_p95_ms": round(1000 * float(np.percentile(lat, 95)), 2),
        "throughput_per_s": round(len(many["input_ids"]) / statistics.median(thr), 1),
        "peak_memory_mb": peak_memory_mb(v.path, v.backend, cfg.batch_size, seq_len) if cfg.memory else None,
    }


def load_benched(path: str, max_length: int | None):
    """A classifier as `load_trained` gives it, or an embedding model (torch or ONNX) in the same shape: .model,
    .tokenizer, .max_length (its forward / graph gives the sentence vectors)."""
    from types import SimpleNamespace

    from distilkit.inference.loading import load_trained

    if not is_embedding_model(path):
        return load_trained(path, max_length)
    model, tokenizer, length = load_embedder(path)
    return SimpleNamespace(model=model, tokenizer=tokenizer, max_length=min(max_length or length, length))


def bench(cfg: BenchConfig, resolved: dict | None = None) -> dict:
    if not cfg.models:
        raise DistilkitError("no models given: distilkit bench MODEL [MODEL ...]")
    if cfg.output:
        check_new_file(Path(cfg.output), cfg.overwrite)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
        os.environ["DISTILKIT_ORT_THREADS"] = str(cfg.threads)
    variants = variants_for(cfg.models, cfg.backend)
    for v in variants if not cfg.data else []:  # synthetic inputs of --seq-len tokens must fit every model
        path = v.path if is_onnx_folder(v.path) else resolve_model(v.path)
        fit_max_length(cfg.seq_len, max_positions(path), path, option="--seq-len")
    loaded = [load_benched(v.path, cfg.max_length) for v in variants]
    cfg.max_length = min(t.max_length for t in loaded)  # texts every model can read
    singles, many = input_batches(loaded[0].tokenizer, cfg)
    seq_len = int(np.mean([b["input_ids"].shape[1] for b in singles]))
    calls = [caller(t, v.backend) for t, v in zip(loaded, variants)]
    for call in calls:
        for i in range(cfg.warmup):
            call(singles[i % len(singles)])
        call(many)
    load_before = machine_load()
    latency, throughput = timed_rounds(calls, singles, many, cfg.rounds, cfg.settle_ms)
    load_after = machine_load()  # before the memory probes below, which start processes of their own
    rows = [
        model_row(v, t, lat, thr, many, cfg, seq_len) for v, t, lat, thr in zip(variants, loaded, latency, throughput)
    ]
    base = rows[0]
    for row in rows:
        row["speedup"] = round(base["latency_p50_ms"] / row["latency_p50_ms"], 2)
        if base["gflops_per_example"] and row["gflops_per_example"]:
            row["speedup_flops"] = round(base["gflops_per_example"] / row["gflops_per_example"], 2)
    threads = torch.get_num_threads()
    timing = judge_timings(rows, load_before, load_after, usable_cores(), threads)
    result = {
        "seq_len": seq_len,
        "inputs": cfg.data or "synthetic",
        "batch_size": cfg.batch_size,
        "rounds": cfg.rounds,
        "settle_ms": cfg.settle_ms,
        "threads": threads,
        **timing,
        "models": rows,
    }
    show(format_bench(result))
    if cfg.output:
        write_json(Path(cfg.output), result)  # checked before anything ran (check_new_file)
    return result


def format_bench(result: dict) -> str:
    head = (
        f"{'model':28s} {'backend':10s} {'prec':8s} {'params':>11s} {'MB':>7s} {'GFLOPs':>7s} {'p50 ms':>8s} "
        f"{'p95 ms':>8s} {'ex/s':>7s} {'peak MB':>8s} {'speed-up':>8s} {'(FLOPs)':>8s}"
    )
    settled = f", each after {result['settle_ms']} ms of its model's untimed calls" if result.get("settle_ms") else ""
    lines = [
        f"batch 1 latency and batch {result['batch_size']} throughput, {result['inputs']} inputs, mean length "
        f"{result['seq_len']}, {result['threads']} threads, {result['rounds']} interleaved rounds{settled}",
        head,
    ]
    for r in result["models"]:
        lines.append(
            f"{r['model'][:28]:28s} {r['backend']:10s} {r['precision']:8s} {r['parameters']:>11,d} "
            f"{r['size_mb']:>7.1f} "
            f"{(r['gflops_per_example'] or 0):>7.2f} {r['latency_p50_ms']:>8.2f} {r['latency_p95_ms']:>8.2f} "
            f"{r['throughput_per_s']:>7.1f} {(r['peak_memory_mb'] or 0):>8.0f} {r['speedup']:>7.2f}x "
            f"{r.get('speedup_flops', 0):>7.2f}x"
        )
    if result.get("warnings"):
        lines.append("warning: these timings cannot be trusted (rerun on an idle machine before comparing speed):")
        lines += [f"warning: {w}" for w in result["warnings"]]
    return "\n".join(lines)
