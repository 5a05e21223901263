"""Benchmark: full fine-tuning vs LoRA, BitFit, bottleneck adapter and prefix tuning of MiniLM-L6 on bbc-news.

    python benchmarks/peft_methods.py [--only METHOD ...] [--epochs 3]

Each run is a separate `python -m distilkit finetune` process under /usr/bin/time, so its peak memory
(max RSS) is its own. Reports test accuracy, trainable parameters, saved model/adapter size, wall time and
peak memory. Writes benchmarks/results/peft_methods.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, RUNS, metrics, save, shown

METHODS = {  # learning rates usual for each method
    "full": ["--lr", "1e-4"],
    "lora": ["--peft", "lora", "--lr", "1e-3"],
    "bitfit": ["--peft", "bitfit", "--lr", "2e-3"],
    "adapter": ["--peft", "adapter", "--lr", "1e-3"],
    "prefix": ["--peft", "prefix", "--lr", "1e-2"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=list(METHODS))
    parser.add_argument("--epochs", default="3")
    args = parser.parse_args()
    for name in args.only or list(METHODS):
        out = RUNS / f"peft-{name}"
        argv = [
            "finetune",
            "--model",
            "minilm-l6",
            "--data",
            "bbc-news",
            "--epochs",
            args.epochs,
            "--batch-size",
            "32",
            "--max-length",
            "128",
            "--threads",
            "2",
            "--output",
            out,
            "--overwrite",
            *METHODS[name],
        ]
        rss_file = Path(tempfile.mkstemp()[1])
        started = time.perf_counter()
        subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), sys.executable, "-m", "distilkit", *map(str, argv)],
            check=True,
            cwd=ROOT,
        )
        wall = time.perf_counter() - started
        m = metrics(out)
        result = {
            "command": shown(argv),
            "test_accuracy": round(m["test"]["accuracy"], 4),
            "trainable_parameters": m["trainable_parameters"],
            "parameters": m["parameters"],
            "saved_bytes": m["model_bytes"],
            "train_seconds": m["train"]["wall_seconds"],
            "wall_seconds": round(wall, 1),
            "peak_rss_mb": round(int(rss_file.read_text().split()[-1]) / 1024, 1),
        }
        save("peft_methods", name, result)
        print(
            f"\n{name}: acc {result['test_accuracy']:.4f}  trainable {result['trainable_parameters']:,}  "
            f"saved {result['saved_bytes'] / 1e6:.2f} MB  {result['train_seconds']:.0f} s  {result['peak_rss_mb']} MB\n"
        )


if __name__ == "__main__":
    main()
