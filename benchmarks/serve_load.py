"""Benchmark: `distilkit serve` under load, micro-batched vs one text per forward pass.

    python benchmarks/serve_load.py [--model FOLDER] [--requests 1000] [--rounds 5] [--time-limit 120]

Starts `distilkit serve` as a subprocess on 127.0.0.1 with the int8 student (benchmarks/runs/compress/
student-int8-dynamic, from benchmarks/compress.py; ONNX Runtime backend) twice: micro-batched (--max-batch 32
--max-wait-ms 5) and unbatched (--max-batch 1 --max-wait-ms 0). Against each, an asyncio load generator (httpx)
keeps 1, 4 and 16 requests in flight until 1,000 requests (one text each) are answered or the time limit
passes, in 5 rounds that alternate between the two servers (so drift in the machine's speed hits both alike).
Texts are the first sentences of real BBC News test articles, at most 64 tokens. The load generator shares the
machine's cores with the server, as a sidecar would. Before the servers start, the model alone (the server's
Engine.predict in this process, no HTTP) is timed at batch 1, 16 and 32 on the same texts: how much a forward
pass over many texts saves on this machine, the ceiling for what micro-batching can gain.
Writes benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from common import ROOT, RUNS, save

from distilkit.data.builtin import load_bbc_news
from distilkit.models import load_tokenizer
from distilkit.serving.engine import Engine

MODEL = RUNS / "compress" / "student-int8-dynamic"
MODES = {
    "micro-batched": ["--max-batch", "32", "--max-wait-ms", "5"],
    "batch size 1": ["--max-batch", "1", "--max-wait-ms", "0"],
}
CONCURRENCY = (1, 4, 16)
MAX_TOKENS = 64


def sentences(model: Path) -> list[str]:
    """First sentences of the BBC test articles (title included: the corpus runs it into the text), ≤ 64 tokens."""
    tokenizer = load_tokenizer(str(model))
    out = []
    for row in load_bbc_news()["test"]:
        first = row["text"].split(". ")[0].rstrip(".") + "."
        if len(tokenizer(first)["input_ids"]) <= MAX_TOKENS:
            out.append(first)
    return out


def model_alone(model: Path, texts: list[str], rounds: int) -> dict:
    """Milliseconds per text of Engine.predict at batch 1, 16 and 32 (interleaved rounds, medians) and the gain."""
    engine = Engine.load(str(model), None)
    engine.warm_up()
    rows = [{"text": t} for t in texts[:256]]
    times: dict[int, list[float]] = {1: [], 16: [], 32: []}
    for _ in range(rounds):
        for size in times:
            started = time.perf_counter()
            for i in range(0, len(rows), size):
                engine.predict(rows[i : i + size])
            times[size].append(1000 * (time.perf_counter() - started) / len(rows))
    ms = {str(size): round(statistics.median(t), 3) for size, t in times.items()}
    return {"ms_per_text": ms, "gain": {size: round(ms["1"] / ms[size], 2) for size in ("16", "32")}}


def start(model: Path, options: list[str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "distilkit",
        "serve",
        str(model),
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--max-queue",
        "4096",
        *options,
    ]
    process = subprocess.Popen(command, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"distilkit serve exited with {process.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("distilkit serve was not ready within 2 minutes")


def batch_sizes(url: str) -> tuple[float, float]:
    """(texts, forward passes) so far, from the server's /metrics."""
    text = httpx.get(url + "/metrics").text
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("distilkit_batch_size_")
    }
    return values["distilkit_batch_size_sum"], values["distilkit_batch_size_count"]


async def load(url: str, texts: list[str], requests: int, concurrency: int, time_limit: float) -> dict:
    """`concurrency` workers send one-text requests back to back until `requests` are answered or time is up.

    Returns the raw latencies (s), the wall time and the errors, so rounds can be pooled.
    """
    latencies: list[float] = []
    errors = sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        for i in range(2):  # warm-up, not counted: every connection opened
            await asyncio.gather(
                *(
                    client.post("/predict", json={"texts": [texts[(i * concurrency + j) % len(texts)]]})
                    for j in range(concurrency)
                )
            )
        started = time.perf_counter()
        deadline = started + time_limit

        async def worker():
            nonlocal sent, errors
            while sent < requests and time.perf_counter() < deadline:
                text = texts[sent % len(texts)]
                sent += 1
                t0 = time.perf_counter()
                response = await client.post("/predict", json={"texts": [text]})
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"latencies": latencies, "seconds": wall, "errors": errors, "cut": sent < requests}


def summary(rounds: list[dict], batches: tuple[float, float]) -> dict:
    """Pooled rounds: throughput = answered requests / time spent sending them; percentiles over all requests."""
    ms = sorted(1000 * x for r in rounds for x in r["latencies"])
    seconds = sum(r["seconds"] for r in rounds)
    return {
        "requests": len(ms),
        "errors": sum(r["errors"] for r in rounds),
        "seconds": round(seconds, 2),
        "throughput_rps": round(len(ms) / seconds, 1),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 1),
        "mean_batch": round(batches[0] / max(1.0, batches[1]), 2),
        "stopped_by_time_limit": any(r["cut"] for r in rounds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--requests", type=int, default=1000, help="per mode and concurrency")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds the requests are split into")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per mode and concurrency")
    args = parser.parse_args()
    texts = sentences(args.model)
    print(f"{len(texts)} BBC test sentences of at most {MAX_TOKENS} tokens; model {args.model}")
    alone = model_alone(args.model, texts, args.rounds)
    print(f"model alone, no HTTP: {alone}", flush=True)
    servers = {mode: start(args.model, options) for mode, options in MODES.items()}
    results: dict = {}
    try:
        for concurrency in CONCURRENCY:
            rounds: dict = {mode: [] for mode in MODES}
            before = {mode: batch_sizes(url) for mode, (_, url) in servers.items()}
            for i in range(args.rounds):  # alternate the servers round by round: drift hits both alike
                for mode in list(MODES) if i % 2 == 0 else list(MODES)[::-1]:
                    rounds[mode].append(
                        asyncio.run(
                            load(
                                servers[mode][1],
                                texts,
                                args.requests // args.rounds,
                                concurrency,
                                args.time_limit / args.rounds,
                            )
                        )
                    )
            for mode, (_, url) in servers.items():
                after = batch_sizes(url)
                run = summary(rounds[mode], (after[0] - before[mode][0], after[1] - before[mode][1]))
                results.setdefault(mode, {})[str(concurrency)] = run
                print(f"{mode:>14}, concurrency {concurrency:>2}: {run}", flush=True)
    finally:
        for process, _ in servers.values():
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    batched, single = results["micro-batched"], results["batch size 1"]
    speedup = {c: round(batched[c]["throughput_rps"] / single[c]["throughput_rps"], 2) for c in batched}
    command = "python benchmarks/serve_load.py" + ("" if args.model == MODEL else f" --model {args.model}")
    path = save(
        "serve_load",
        args.model.name,
        {
            "model": str(args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model),
            "texts": len(texts),
            "max_tokens": MAX_TOKENS,
            "modes": {m: " ".join(o) for m, o in MODES.items()},
            "cpu_cores": os.cpu_count(),
            "model_alone": alone,
            "results": results,
            "throughput_speedup": speedup,
            "command": command,
        },
    )
    print(
        "\n| concurrency | micro-batched req/s | p50 / p99 ms | mean batch | batch size 1 req/s | p50 / p99 ms "
        "| speed-up |"
    )
    print("|---|---|---|---|---|---|---|")
    for c in results["micro-batched"]:
        m, b = results["micro-batched"][c], results["batch size 1"][c]
        print(
            f"| {c} | {m['throughput_rps']} | {m['p50_ms']} / {m['p99_ms']} | {m['mean_batch']} | "
            f"{b['throughput_rps']} | {b['p50_ms']} / {b['p99_ms']} | {speedup[c]}x |"
        )
    ms = " / ".join(map(str, alone["ms_per_text"].values()))
    print(
        f"\nmodel alone (no HTTP), ms per text at batch 1 / 16 / 32: {ms} → batching gains at most "
        f"{max(alone['gain'].values())}x on this machine"
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
