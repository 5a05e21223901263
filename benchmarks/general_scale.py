"""Benchmark: general distillation at corpus scale — tokens/s with one process vs two, and peak memory with the
corpus at 1x vs 4x its size.

    python benchmarks/general_scale.py [--rounds 2] [--steps 60]

Corpus: the ablation corpus (benchmarks/tinybert_ablation.py writes it: Brown train sentences + bbc-news train
articles, ~1.9M tokens); 4x = the same files four times over. Each run is `distill --general --method tinybert`
of the 4L-312H-12A-1200F student from the packaged MiniLM-L6 (teacher live, no cache), for a fixed number of
optimizer steps at a global batch of 32 blocks of 128 tokens:
- throughput: one process with 2 threads vs `accelerate launch --multi_gpu --num_processes 2` (gloo, 1 thread
  each, 16 blocks per process), interleaved, `--rounds` times; tokens/s from the run's metrics.json;
- memory: peak RSS of the whole command (corpus reading and packing included, each in a fresh cache) for the 1x
  and the 4x corpus, one process, the same number of steps.
Writes benchmarks/results/general_scale.json.
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

    from distilkit.distill.general import load_corpus, pack_corpus
    from distilkit.models import load_tokenizer, resolve_model

    tokenizer = load_tokenizer(resolve_model("minilm-l6"))
    return len(pack_corpus(load_corpus(corpus, "text", Path(cache) / "corpus"), tokenizer, 128))


def run(argv: list[str], env: dict, launcher: list[str]) -> None:
    done = subprocess.run([*launcher, *argv], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{done.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    if not CORPUS.exists():
        raise SystemExit(f"{CORPUS} is missing: run python benchmarks/tinybert_ablation.py --only general first")
    shared = tempfile.mkdtemp(prefix="distilkit-scale-")
    blocks = blocks_of(str(CORPUS), shared)
    epochs = f"{args.steps * 32 / blocks:.6f}"
    out = RUNS / "general-scale-run"
    one = [*GENERAL, "--data", CORPUS, "--epochs", epochs, "--batch-size", "32", "--threads", "2"]
    two = [*GENERAL, "--data", CORPUS, "--epochs", epochs, "--batch-size", "16"]
    env = {**os.environ, "DISTILKIT_CACHE": shared}
    speed: dict[str, list[float]] = {"1 process": [], "2 processes": []}
    for _ in range(args.rounds):
        for name, argv, launcher in (
            ("1 process", one, [sys.executable, "-m", "distilkit"]),
            ("2 processes", two, LAUNCH),
        ):
            run([str(a) for a in argv] + ["--output", str(out)], env, launcher)
            m = json.loads((out / "metrics.json").read_text())
            speed[name].append(m["train"]["tokens_per_second"])
            print(f"{name}: {speed[name][-1]} tokens/s", flush=True)
    memory = {}
    for name, corpus, scale in (("1x", str(CORPUS), 1), ("4x", corpus_4x(), 4)):
        fresh = tempfile.mkdtemp(prefix="distilkit-scale-mem-")
        argv = [*GENERAL, "--data", corpus, "--epochs", f"{float(epochs) / scale:.6f}", "--batch-size", "32"]
        argv += ["--threads", "2", "--output", str(out)]
        # a fresh interpreter per size: ru_maxrss of children is the largest so far, so measure in a wrapper
        wrapper = [sys.executable, "-c", _PEAK, sys.executable, "-m", "distilkit"]
        done = subprocess.run([*wrapper, *map(str, argv)], env={**env, "DISTILKIT_CACHE": fresh}, capture_output=True)
        if done.returncode != 0:
            raise SystemExit(done.stderr.decode()[-3000:])
        memory[name] = round(float(done.stdout.decode().strip().splitlines()[-1]), 1)
        m = json.loads((out / "metrics.json").read_text())
        memory[f"{name}_tokens"] = m["train"]["tokens"]
        print(f"corpus {name}: peak RSS {memory[name]} MB ({m['train']['tokens']:,} tokens)", flush=True)
        shutil.rmtree(fresh, ignore_errors=True)
    medians = {k: statistics.median(v) for k, v in speed.items()}
    launch = "accelerate launch --multi_gpu --num_processes 2 -m distilkit "
    result = {
        "steps": args.steps,
        "global_batch": 32,
        "tokens_per_second": {k: v for k, v in speed.items()},
        "median_tokens_per_second": medians,
        "speedup_2_processes": round(medians["2 processes"] / medians["1 process"], 3),
        "peak_rss_mb": memory,
        "rss_ratio_4x_to_1x": round(memory["4x"] / memory["1x"], 3),
        "command_1_process": "distilkit " + " ".join(map(str, one)),
        "command_2_processes": launch + " ".join(map(str, two)),
    }
    save("general_scale", "general-4L312-minilm", result)
    print(json.dumps(result, indent=2))


# Runs the command given after it and prints the peak RSS (MB) of that command and its children.
_PEAK = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    "sys.exit(code)\n"
)


if __name__ == "__main__":
    main()
