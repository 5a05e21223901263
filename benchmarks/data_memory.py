"""Peak memory of `distilkit finetune` on a generated Parquet training set at 1x and 8x the rows.

The question (issue 39): does a labelled set larger than RAM train, i.e. is peak memory flat in the number of rows?
The model is a tiny random BERT (2 layers, hidden 64) with the packaged MiniLM tokenizer, so the data, not the
model, is what could grow. Each size runs `python -m distilkit finetune` in a child process whose /proc status is
polled every 20 ms: peak VmRSS (everything resident, file-backed pages of memory-mapped Arrow files included) and
peak RssAnon (memory the process itself holds: Python objects, tensors). One epoch, batch 64, max length 32.

    python benchmarks/data_memory.py [--rows 20000] [--factor 8] [--label current]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import save

TOPICS = {
    "sport": ["goal", "match", "team", "coach", "league", "score"],
    "music": ["band", "song", "album", "guitar", "concert", "singer"],
    "food": ["bread", "cheese", "recipe", "kitchen", "soup", "bake"],
}
FILLER = "the a of and to in is was for on that with as by at from it this be are".split()


def generated_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = list(TOPICS)[i % len(TOPICS)]
        words = rng.choices(FILLER, k=14) + rng.sample(TOPICS[label], 2)
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return rows


def tiny_model(folder: Path) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertModel

    from distilkit.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm-l6"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def peak_memory(command: list[str]) -> dict:
    """Run `command`; poll its /proc status for the peaks of VmRSS and RssAnon (MB)."""
    start = time.perf_counter()
    log = tempfile.TemporaryFile(mode="w+")  # not a pipe: a full pipe buffer would block the child's progress bars
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True)
    peaks = {"VmRSS": 0, "RssAnon": 0}
    status = Path(f"/proc/{child.pid}/status")
    while child.poll() is None:
        try:
            for line in status.read_text().splitlines():
                key = line.split(":")[0]
                if key in peaks:
                    peaks[key] = max(peaks[key], int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            pass
        time.sleep(0.02)
    log.seek(0)
    err = log.read()
    if child.returncode != 0:
        raise SystemExit(f"finetune failed ({child.returncode}): {err.strip().splitlines()[-1:]}")
    return {
        "peak_rss_mb": round(peaks["VmRSS"] / 1024, 1),
        "peak_anon_mb": round(peaks["RssAnon"] / 1024, 1),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--factor", type=int, default=8)
    parser.add_argument("--label", default="current", help="the key the result is saved under")
    args = parser.parse_args()
    import datasets

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = tiny_model(folder / "tiny")
        results = []
        for n in (args.rows, args.rows * args.factor):
            data = folder / f"train-{n}.parquet"
            datasets.Dataset.from_list(generated_rows(n, seed=n)).to_parquet(str(data))
            command = [sys.executable, "-m", "distilkit", "finetune", "--model", str(model), "--data", str(data)]
            command += ["--output", str(folder / f"run-{n}"), "--epochs", "1", "--batch-size", "64"]
            command += ["--max-length", "32", "--split", "0.98,0.01,0.01"]
            row = {"rows": n, "parquet_mb": round(data.stat().st_size / 1e6, 1), **peak_memory(command)}
            print(row, flush=True)
            results.append(row)
    small, large = results
    summary = {
        "rows": [r["rows"] for r in results],
        "runs": results,
        "rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3),
        "anon_ratio": round(large["peak_anon_mb"] / small["peak_anon_mb"], 3),
    }
    print(f"peak RSS {args.factor}x/1x: {summary['rss_ratio']}, peak anonymous memory: {summary['anon_ratio']}")
    save("data_memory", args.label, summary)


if __name__ == "__main__":
    main()
