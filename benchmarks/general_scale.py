"""Benchmark: general distillation at corpus scale — tokens/s with one process vs two, and peak memory with the
corpus at 1x vs 4x its size.

    python benchmarks/general_scale.py [--only throughput memory] [--rounds 2] [--steps 60]
                                       [--memory-rounds 2] [--memory-steps 10]

Corpus: the ablation corpus (benchmarks/tinybert_ablation.py writes it: Brown train sentences + bbc-news train
articles, ~1.9M tokens); 4x = the same files four times over. Each run is `distill --general --method tinybert`
of the 4L-312H-12A-1200F student from the packaged MiniLM-L6 (teacher live, no cache), for a fixed number of
optimizer steps at a global batch of 32 blocks of 128 tokens:
- throughput: one process with 2 threads vs `accelerate launch --multi_gpu --num_processes 2` (gloo, 1 thread
  each, 16 blocks per process), interleaved, `--rounds` times; tokens/s from the run's metrics.json;
- memory: peak RSS of the whole command (corpus reading and packing included, each in a fresh cache) for the 1x
  and the 4x corpus, one process, `--memory-steps` steps each, interleaved `--memory-rounds` times (medians),
  with the sampled split into anonymous memory and file-backed pages (the memory-mapped corpus among them).
  The peak falls in training, where each step's transient activations make it vary by ~100 MB between runs.
Writes benchmarks/results/general_scale.json (keys `throughput` and `memory-N-steps`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from common import RUNS, save

CORPUS = RUNS / "ablation-corpus"
STUDENT = ["--student", "4L-312H-12A-1200F", "--layer-map", "0:0,1:2,2:3,3:4,4:6"]
GENERAL = ["distill", "--general", "--method", "tinybert", "--teacher", "minilm-l6", *STUDENT]
GENERAL += ["--max-length", "128", "--lr", "5e-4", "--cache", "false", "--overwrite", "--logging-steps", "20"]
OUT = RUNS / "general-scale-run"  # every run writes here; only its metrics.json is read
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
LAUNCH += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "distilkit"]


def corpus_4x() -> str:
    folder = RUNS / "general-scale-4x"
    folder.mkdir(parents=True, exist_ok=True)
    for copy in range(4):
        for f in CORPUS.glob("*.txt"):
            target = folder / f"{copy}-{f.name}"
            if not target.exists():
                shutil.copyfile(f, target)
    return str(folder)


def blocks_of(corpus: str, cache: str) -> int:
    """Blocks in the packed corpus (packing once, into `cache`)."""
    from pathlib import Path

    from distilkit.distillation.general import load_corpus, pack_corpus
    from distilkit.models import load_tokenizer, resolve_model

    tokenizer = load_tokenizer(resolve_model("minilm-l6"))
    return len(pack_corpus(load_corpus(corpus, "text", Path(cache) / "corpus"), tokenizer, 128))


def run(argv: list[str], env: dict, launcher: list[str]) -> None:
    done = subprocess.run([*launcher, *argv], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{done.stderr[-3000:]}")


def throughput(args, blocks: int, shared: str) -> dict:
    """Tokens/s of one process (2 threads) vs two (1 thread each), interleaved `--rounds` times."""
    epochs = f"{args.steps * 32 / blocks:.6f}"
    one = [*GENERAL, "--data", CORPUS, "--epochs", epochs, "--batch-size", "32", "--threads", "2"]
    two = [*GENERAL, "--data", CORPUS, "--epochs", epochs, "--batch-size", "16"]
    env = {**os.environ, "DISTILKIT_CACHE": shared}
    speed: dict[str, list[float]] = {"1 process": [], "2 processes": []}
    for _ in range(args.rounds):
        for name, argv, launcher in (
            ("1 process", one, [sys.executable, "-m", "distilkit"]),
            ("2 processes", two, LAUNCH),
        ):
            run([str(a) for a in argv] + ["--output", str(OUT)], env, launcher)
            m = json.loads((OUT / "metrics.json").read_text())
            speed[name].append(m["train"]["tokens_per_second"])
            print(f"{name}: {speed[name][-1]} tokens/s", flush=True)
    medians = {k: statistics.median(v) for k, v in speed.items()}
    launch = "accelerate launch --multi_gpu --num_processes 2 -m distilkit "
    return {
        "steps": args.steps,
        "global_batch": 32,
        "tokens_per_second": speed,
        "median_tokens_per_second": medians,
        "speedup_2_processes": round(medians["2 processes"] / medians["1 process"], 3),
        "command_1_process": "distilkit " + " ".join(map(str, one)),
        "command_2_processes": launch + " ".join(map(str, two)),
    }


def memory(args, blocks: int) -> dict:
    """Peak RSS of the whole command for the 1x and the 4x corpus (fresh cache each: reading and packing
    included), interleaved `--memory-rounds` times, the same `--memory-steps` steps each. Peak RSS is the
    kernel's (ru_maxrss); its split into anonymous memory (heap, tensors) and file-backed pages (the
    memory-mapped Arrow corpus, libraries) is sampled every 0.2 s, so it can miss a short peak."""
    runs: dict[str, list[dict]] = {"1x": [], "4x": []}
    sizes = (("1x", str(CORPUS), 1), ("4x", corpus_4x(), 4))
    for _ in range(args.memory_rounds):
        for name, corpus, scale in sizes:
            fresh = tempfile.mkdtemp(prefix="distilkit-scale-mem-")
            epochs = f"{args.memory_steps * 32 / blocks / scale:.6f}"
            argv = [*GENERAL, "--data", corpus, "--epochs", epochs, "--batch-size", "32"]
            argv += ["--threads", "2", "--output", str(OUT)]
            env = {**os.environ, "DISTILKIT_CACHE": fresh}
            done = subprocess.run(
                [sys.executable, "-c", _PEAK, sys.executable, "-m", "distilkit", *map(str, argv)],
                env=env,
                capture_output=True,
                text=True,
            )
            shutil.rmtree(fresh, ignore_errors=True)
            if done.returncode != 0:
                raise SystemExit(done.stderr[-3000:])
            peak = json.loads(done.stdout.strip().splitlines()[-1])
            peak["tokens"] = json.loads((OUT / "metrics.json").read_text())["train"]["tokens"]
            runs[name].append(peak)
            print(f"corpus {name}: {peak}", flush=True)
    medians = {n: {k: round(statistics.median(r[k] for r in rs), 1) for k in rs[0]} for n, rs in runs.items()}
    return {
        "steps": args.memory_steps,
        "runs": runs,
        "median": medians,
        "rss_ratio_4x_to_1x": round(medians["4x"]["peak_rss_mb"] / medians["1x"]["peak_rss_mb"], 3),
        "anon_ratio_4x_to_1x": round(medians["4x"]["peak_anon_mb"] / medians["1x"]["peak_anon_mb"], 3),
        "command": "distilkit " + " ".join(map(str, GENERAL)) + " --data CORPUS --batch-size 32 --threads 2",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=["throughput", "memory"], help="default: both")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--memory-rounds", type=int, default=2)
    parser.add_argument("--memory-steps", type=int, default=10)
    args = parser.parse_args()
    if not CORPUS.exists():
        raise SystemExit(f"{CORPUS} is missing: run python benchmarks/tinybert_ablation.py --only general first")
    shared = tempfile.mkdtemp(prefix="distilkit-scale-")
    blocks = blocks_of(str(CORPUS), shared)
    for job in args.only or ["throughput", "memory"]:
        result = throughput(args, blocks, shared) if job == "throughput" else memory(args, blocks)
        save("general_scale", job if job == "throughput" else f"memory-{args.memory_steps}-steps", result)
        print(json.dumps(result, indent=2), flush=True)


# Runs the command given after it; prints, as JSON, its peak RSS (MB, children included: ru_maxrss) and the
# largest anonymous and file-backed RSS seen in /proc/PID/status, sampled every 0.2 s.
_PEAK = """
import json, resource, subprocess, sys, time
child, seen = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL), {"RssAnon": 0, "RssFile": 0}
while child.poll() is None:
    try:
        for line in open(f"/proc/{child.pid}/status"):
            key, _, value = line.partition(":")
            if key in seen:
                seen[key] = max(seen[key], int(value.split()[0]) / 1024)
    except OSError:
        pass
    time.sleep(0.2)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"peak_rss_mb": round(peak, 1), "peak_anon_mb": round(seen["RssAnon"], 1),
                  "peak_file_mb": round(seen["RssFile"], 1)}))
sys.exit(child.returncode)
"""


if __name__ == "__main__":
    main()
