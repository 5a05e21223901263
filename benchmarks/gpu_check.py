"""GPU check: distillation, fine-tuning and serving throughput of distilkit on one CUDA device, in one command.

    python benchmarks/gpu_check.py             # on a CUDA machine: about 5 minutes, writes results/gpu_check.json
    python benchmarks/gpu_check.py --dry-run   # anywhere: every case on a tiny model, nothing written

Without a CUDA device it says so, runs the dry run and exits 0, so `make test` covers the script itself
(tests/test_gpu_check.py). It needs torch, transformers, peft, accelerate and distilkit's own dependencies;
TextBrewer joins where it is installed (`import textbrewer` works), else the result says it was not.

The job. Speed does not depend on the weights, so the models are random and nothing comes from a hub:
- teacher: a BERT-base-shaped encoder (12 layers, hidden 768, 12 heads, FFN 3072, 512 positions) with the
  packaged MiniLM-L6 tokenizer and a 5-label head (`--force`: distilkit would refuse an untrained teacher);
- student: 4 of the teacher's layers (`--student 4`: layers chosen uniformly, DistilBERT-style init);
- data: 2,048 BBC News training articles (packaged), a 256-article dev file, max length 128, batch 32, 1 epoch.
Cases, each once, in this order (one warm-up distillation first, not recorded):
- distil, method kd, precision bf16 and fp16, teacher cache on and off (the cache's first epoch builds it: with one
  epoch, "cache on" measures building it; "reuse" runs the same job again and reads it);
- distil, the TextBrewer comparison's losses (kd + embedding, hidden and attention MSE, layers 0,4,8 ← student
  0,1,2 for a 3-layer student), fp32 and bf16; TextBrewer's GeneralDistiller on the same job in fp32
  (benchmarks/peer_textbrewer_run.py, --device cuda), where installed;
- finetune the teacher, bf16 and fp16;
- serve: the 4-layer student in distilkit's serving engine (the model `distilkit serve` runs, without HTTP) on the
  GPU, texts per second at batch 1 and 32 (`distilkit serve` itself has no device option: it serves on the CPU).
Samples per second are the Trainer's own `train_samples_per_second` (train_results.json of each run folder).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import HERE, save

FULL = {"layers": 12, "hidden": 768, "heads": 12, "ffn": 3072, "rows": 2048, "dev": 256, "batch": 32}
FULL.update(student="4", peer_student="3", peer_layers="0,4,8")
TINY = {"layers": 2, "hidden": 32, "heads": 2, "ffn": 64, "rows": 32, "dev": 8, "batch": 16}
TINY.update(student="1", peer_student="1", peer_layers="0")
PEER_LOSSES = {"kd": 1.0, "embedding_mse": 1.0, "hidden_mse": 1.0, "attention_mse": 1.0}


def build_teacher(folder: Path, shape: dict, labels: list[str]) -> Path:
    """A random BERT of `shape` with the packaged MiniLM tokenizer and a head for `labels`."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from distilkit.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm-l6"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=shape["hidden"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        intermediate_size=shape["ffn"],
        max_position_embeddings=512,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_data(folder: Path, shape: dict) -> tuple[dict[str, Path], list[str]]:
    """train/dev/test CSV files of packaged BBC News articles, and the labels."""
    from distilkit.config import DataOptions
    from distilkit.data.dataset import load_task_data

    data = load_task_data(DataOptions(data="bbc-news"), seed=42, for_training=True)
    rows = list(data.splits["train"]) * 2  # 1,700 articles: the 2,048 rows repeat some
    sizes = {"train": (rows, shape["rows"]), "dev": (list(data.splits["dev"]), shape["dev"])}
    sizes["test"] = (list(data.splits["test"]), shape["dev"])
    files = {}
    for split, (source, count) in sizes.items():
        files[split] = folder / f"{split}.csv"
        with open(files[split], "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows({"text": r["text"], "label": r["label"]} for r in source[:count])
    return files, list(data.labels)


def samples_per_second(run: Path) -> float:
    return round(float(json.loads((run / "train_results.json").read_text())["train_samples_per_second"]), 1)


def distil_case(teacher: Path, files: dict, out: Path, shape: dict, **options) -> dict:
    import distilkit

    started = time.perf_counter()
    options.setdefault("student", shape["student"])
    result = distilkit.distill(
        teacher=str(teacher), train_file=str(files["train"]), dev_file=str(files["dev"]), output=str(out),
        epochs=1, batch_size=shape["batch"], max_length=128, force=True, overwrite=True,
        cache_dir=str(out.parent / "teacher-cache"), **options
    )  # fmt: skip
    return {
        "samples_per_second": samples_per_second(result.folder),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def distillation(teacher: Path, files: dict, work: Path, shape: dict, cuda: bool) -> dict:
    out: dict = {}
    if cuda:  # CUDA's start-up (context, kernels, allocator) is paid here, not by the first case
        distil_case(teacher, files, work / "warm-up", shape, method="kd", cache=False)
    for precision in ("bf16", "fp16") if cuda else ("fp32",):
        for cache in (False, True):
            case = f"kd {precision} cache {'on' if cache else 'off'}"
            out[case] = distil_case(teacher, files, work / case.replace(" ", "-"), shape, method="kd", cache=cache,
                                    precision=precision)  # fmt: skip
        case = f"kd {precision} cache reuse"
        out[case] = distil_case(teacher, files, work / case.replace(" ", "-"), shape, method="kd", cache=True,
                                precision=precision)  # fmt: skip
    for precision in ("fp32", "bf16") if cuda else ("fp32",):
        case = f"textbrewer-job distilkit {precision}"
        job = {"student": shape["peer_student"], "method": "kd", "losses": PEER_LOSSES, "temperature": 1.0}
        out[case] = distil_case(teacher, files, work / case.replace(" ", "-"), shape, precision=precision, cache=False,
                                **job)  # fmt: skip
    return out


def textbrewer(teacher: Path, files: dict, work: Path, shape: dict, cuda: bool) -> dict:
    """TextBrewer's GeneralDistiller on the TextBrewer-comparison job, when it is installed."""
    try:
        import textbrewer  # noqa: F401
    except ImportError:
        return {"installed": False}
    jsonl = {}
    for split in ("train", "test"):
        with open(files[split], encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        jsonl[split] = work / f"{split}.jsonl"
        jsonl[split].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = work / "textbrewer.json"
    command = [sys.executable, str(HERE / "peer_textbrewer_run.py"), "--teacher", str(teacher), "--train-file",
               str(jsonl["train"]), "--test-file", str(jsonl["test"]), "--layers", shape["peer_layers"],
               "--epochs", "1", "--batch-size", str(shape["batch"]), "--device", "cuda" if cuda else "cpu", "--threads",
               str(os.cpu_count() or 1), "--output", str(work / "textbrewer"), "--result", str(result)]  # fmt: skip
    subprocess.run(command, check=True)
    run = json.loads(result.read_text())
    return {"installed": True, "samples_per_second": run["samples_per_second"], "version": run["textbrewer_version"]}


def finetuning(teacher: Path, files: dict, work: Path, shape: dict, cuda: bool) -> dict:
    import distilkit

    out = {}
    for precision in ("bf16", "fp16") if cuda else ("fp32",):
        result = distilkit.finetune(
            model=str(teacher), train_file=str(files["train"]), dev_file=str(files["dev"]),
            output=str(work / f"finetune-{precision}"), epochs=1, batch_size=shape["batch"], max_length=128,
            precision=precision, overwrite=True,
        )  # fmt: skip
        out[f"teacher {precision}"] = {"samples_per_second": samples_per_second(result.folder)}
    return out


def serving(student: Path, files: dict, cuda: bool) -> dict:
    """Texts per second of the serving engine on the device, at batch 1 and 32 (3 passes over 256 texts)."""
    import torch

    from distilkit.serving.engine import Engine

    with open(files["test"], encoding="utf-8") as f:
        texts = [{"text": r["text"]} for r in csv.DictReader(f)]
    texts = (texts * (256 // max(len(texts), 1) + 1))[:256]
    engine = Engine.load(str(student), "torch", max_length=128)
    engine.trained.model.to("cuda" if cuda else "cpu")
    engine.warm_up()
    out = {}
    for batch in (1, 32):
        started = time.perf_counter()
        for _ in range(3):
            for i in range(0, len(texts), batch):
                engine.predict(texts[i : i + batch])
        if cuda:
            torch.cuda.synchronize()
        out[f"batch {batch}"] = {"texts_per_second": round(3 * len(texts) / (time.perf_counter() - started), 1)}
    return out


def main(argv: list[str] | None = None) -> dict:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="every case on a tiny model; nothing written")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    dry = args.dry_run or not cuda
    if not cuda:
        print("gpu_check: no CUDA device here; a dry run on a tiny model checks the script, and nothing is written")
    shape = TINY if dry else FULL
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        files, labels = write_data(work, shape)
        teacher = build_teacher(work / "teacher", shape, labels)
        result = {
            "device": torch.cuda.get_device_name(0) if cuda else "cpu (dry run)",
            "shape": shape,
            "distill": distillation(teacher, files, work, shape, cuda),
            "textbrewer": textbrewer(teacher, files, work, shape, cuda),
            "finetune": finetuning(teacher, files, work, shape, cuda),
            "serve_engine": serving(work / ("kd-bf16-cache-off" if cuda else "kd-fp32-cache-off"), files, cuda),
        }
    print(json.dumps(result, indent=2))
    if not dry:
        print(f"written to {save('gpu_check', 'h100' if 'H100' in result['device'] else 'gpu', result)}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
