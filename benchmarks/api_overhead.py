"""DistillationTrainer from one's own script against `distilkit distill`, on the same job: training samples/s.

Both are the same Trainer (the CLI builds a DistillationTrainer), so the question is whether the user's path costs
anything: their own `load_dataset` + tokenizer `map`, their own TrainingArguments fields, the trainer planning the
distillation itself. The job: the packaged MiniLM-L6 with a 5-label head (untrained: speed does not depend on it;
`--force`) distilled into a 3-layer student from its layers with `kd` and with `tinybert`'s layer losses, on 256
BBC News articles, batch 32, max length 128, 1 epoch each. Samples/s is the Trainer's own `train_samples_per_second`
(the same measurement on both sides, which includes the evaluation and checkpoint of each epoch; the teacher
cache is built before it starts, on both sides). Rounds alternate which side goes first; medians of 3 rounds.

    python benchmarks/api_overhead.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import statistics
import tempfile
from pathlib import Path

from common import save

ROWS, BATCH, MAX_LENGTH = 256, 32, 128
METHODS = {"kd": [], "tinybert": ["--intermediate-epochs", "1"]}


def prepare(folder: Path) -> tuple[Path, list[Path]]:
    """A MiniLM teacher with a 5-label head, and CSV files of bbc-news rows (train, dev, test)."""
    import csv

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distilkit.config import DataOptions
    from distilkit.data.dataset import load_task_data
    from distilkit.models import resolve_model

    data = load_task_data(DataOptions(data="bbc-news"), seed=42, for_training=True)
    files = []
    for split, count in (("train", ROWS), ("dev", 64), ("test", 64)):
        path = folder / f"{split}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows({"text": r["text"], "label": r["label"]} for r in data.splits[split][:count])
        files.append(path)
    minilm = resolve_model("minilm-l6")
    labels = data.labels
    teacher = AutoModelForSequenceClassification.from_pretrained(
        minilm, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}
    )
    teacher.save_pretrained(folder / "teacher")
    AutoTokenizer.from_pretrained(minilm).save_pretrained(folder / "teacher")
    return folder / "teacher", files


def cli_samples_per_second(teacher: Path, files: list[Path], out: Path, method: str) -> float:
    """`distilkit distill` in this process; the Trainer's own train_samples_per_second of the last stage."""
    from distilkit.cli import run

    train, dev, test = files
    argv = ["distill", "--teacher", teacher, "--train-file", train, "--dev-file", dev, "--test-file", test]
    argv += ["--student", "3", "--method", method, "--epochs", "1", "--batch-size", BATCH, "--max-length", MAX_LENGTH]
    argv += ["--force", "--output", out, "--overwrite", *METHODS[method]]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run([str(a) for a in argv])
    values = re.findall(r"'train_samples_per_second': '([\d.]+)'", printed.getvalue())
    return float(values[-1])


def script_samples_per_second(teacher: Path, files: list[Path], out: Path, method: str) -> float:
    """What a user's script does: their own datasets and arguments, DistillationTrainer."""
    from datasets import load_dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, set_seed

    from distilkit import DistillationArguments, DistillationTrainer, build_student

    model = AutoModelForSequenceClassification.from_pretrained(teacher)
    tokenizer = AutoTokenizer.from_pretrained(teacher)
    label2id = model.config.label2id
    raw = load_dataset("csv", data_files={"train": str(files[0]), "validation": str(files[1])})

    def tokenize(batch):
        encoded = tokenizer(batch["text"], truncation=True, max_length=MAX_LENGTH)
        encoded["labels"] = [label2id[label] for label in batch["label"]]
        return encoded

    data = raw.map(tokenize, batched=True, remove_columns=["text", "label"])
    set_seed(42)
    args = DistillationArguments(  # what distilkit distill does too: evaluate and checkpoint every epoch
        output_dir=str(out),
        method=method,
        num_train_epochs=1,
        intermediate_epochs=1 if method == "tinybert" else None,
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=64,
        learning_rate=5e-5,
        bf16=_bf16(),
        use_cpu=True,
        report_to="none",
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        train_sampling_strategy="group_by_length",
    )
    trainer = DistillationTrainer(
        model=build_student(model, "3"),
        teacher_model=model,
        args=args,
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=lambda p: {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())},
    )
    return float(trainer.train().metrics["train_samples_per_second"])


def _bf16() -> bool:
    from distilkit.models import native_bf16

    return native_bf16()  # what distilkit distill's --precision auto picks on this machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="api-overhead-") as tmp:
        folder = Path(tmp)
        teacher, files = prepare(folder)
        for method in METHODS:
            cli, script = [], []
            for r in range(args.rounds):
                order = [("cli", cli), ("script", script)] if r % 2 == 0 else [("script", script), ("cli", cli)]
                for side, values in order:
                    measure = cli_samples_per_second if side == "cli" else script_samples_per_second
                    values.append(measure(teacher, files, folder / f"{side}-{method}", method))
                    print(f"{method} round {r + 1} {side}: {values[-1]:.2f} samples/s", flush=True)
            ratio = statistics.median(script) / statistics.median(cli)
            results[method] = {
                "cli_samples_per_second": cli,
                "script_samples_per_second": script,
                "median_ratio_script_over_cli": round(ratio, 4),
                "within_5_percent": abs(ratio - 1) <= 0.05,
            }
            print(f"{method}: script/CLI = {ratio:.3f} (medians of {args.rounds} interleaved rounds)")
    job = f"minilm-l6 (untrained 5-label head) -> 3 layers from it, {ROWS} bbc-news articles, batch {BATCH}"
    path = save("api_overhead", "latest", {"job": job, "rounds": args.rounds, "methods": results})
    print(f"written: {path}")


if __name__ == "__main__":
    main()
