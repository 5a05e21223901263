"""Continual learning: keep training a fine-tuned model on new data without forgetting the old task.

- `--continue-from RUN` starts from RUN's model; new labels extend its label map (old ids unchanged, the old
  head rows are kept, new rows start fresh).
- `--preserve kd` is Learning without Forgetting (Li & Hoiem 2017): the previous model, frozen, labels the
  new inputs, and the loss adds  λ · T² · KL(old(x)[old labels] ‖ new(x)[old labels]).
- `--replay N` mixes N examples of the old training data, from the sample the old run kept in `data_sample/`.
Old-task and new-task accuracy before and after are written to metrics.json (`continual`); old-task accuracy needs
that sample too (its test rows), so without one forgetting is not measured (`old_task` is null).

A run keeps the sample only with `--keep-data-sample`: by default no run folder holds any of the user's data, so
sharing one leaks none. The sample sits beside `model/`, never in it, and `distilkit push` sends `model/` only.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from distilkit.data.dataset import TOK
from distilkit.data.encode import collator_for, encode_rows
from distilkit.errors import DistilkitError
from distilkit.inference.loading import load_trained, run_batches
from distilkit.losses import kd_loss

SAMPLE_DIR = "data_sample"
SAMPLE_SIZES = {"train": 1000, "test": 500}


def save_data_sample(work: Path, data, seed: int) -> None:
    """Keep a small seeded sample of the train and test rows in the run folder (for replay and forgetting); only
    with --keep-data-sample."""
    folder = work / SAMPLE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for split, size in SAMPLE_SIZES.items():
        rows = data.splits.get(split, [])
        rows = random.Random(seed).sample(rows, min(size, len(rows)))
        lines = [json.dumps({k: v for k, v in r.items() if not k.startswith("_")}, ensure_ascii=False) for r in rows]
        (folder / f"{split}.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def has_sample(run: Path) -> bool:
    """Whether a run kept its data sample (it ran with --keep-data-sample)."""
    return all((Path(run) / SAMPLE_DIR / f"{split}.jsonl").is_file() for split in SAMPLE_SIZES)


def read_sample(run: Path, split: str) -> list[dict]:
    path = Path(run) / SAMPLE_DIR / f"{split}.jsonl"
    if not path.exists():
        raise DistilkitError(
            f"{run}: no {SAMPLE_DIR}/{split}.jsonl; --replay needs a run fine-tuned with --keep-data-sample"
        )
    return [dict(json.loads(line), _where=f"{path}:{i + 1}") for i, line in enumerate(path.read_text().splitlines())]


def load_previous(run: str):
    if not (Path(run) / "model").is_dir():
        raise DistilkitError(f"--continue-from {run}: expected a distilkit finetune run folder (with model/)")
    previous = load_trained(run)
    if previous.regression:
        raise DistilkitError(f"--continue-from {run}: continual learning supports classification runs only")
    return previous


def keep_old_head_rows(model, previous_model, n_old: int) -> None:
    """Copy the previous head's rows into the first n_old rows of the new (larger) head."""
    old = dict(previous_model.named_modules())
    copied = False
    for name, module in model.named_modules():
        before = old.get(name)
        if (
            isinstance(module, torch.nn.Linear)
            and isinstance(before, torch.nn.Linear)
            and before.out_features == n_old
            and module.out_features >= n_old
            and before.in_features == module.in_features
        ):
            with torch.no_grad():
                module.weight[:n_old].copy_(before.weight)
                if module.bias is not None and before.bias is not None:
                    module.bias[:n_old].copy_(before.bias)
            copied = True
    if not copied:
        raise DistilkitError("could not find the task head to extend with new labels")


class PreserveMixin:
    """Adds the Learning-without-Forgetting term to any Trainer's loss."""

    previous = None
    n_old = 0
    weight = 1.0
    temperature = 2.0
    token_level = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        batch = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        self.previous.to(outputs.logits.device)
        with torch.no_grad():
            old_logits = self.previous(**batch).logits[..., : self.n_old]
        mask = (inputs["labels"] != -100) if self.token_level and "labels" in inputs else None
        loss = loss + self.weight * kd_loss(outputs.logits[..., : self.n_old], old_logits, self.temperature, mask)
        return (loss, outputs) if return_outputs else loss


def with_preserve(trainer_class, previous_model, n_old: int, weight: float, temperature: float, token_level: bool):
    previous_model.eval().requires_grad_(False)
    attrs = {
        "previous": previous_model,
        "n_old": n_old,
        "weight": weight,
        "temperature": temperature,
        "token_level": token_level,
    }
    return type(f"Preserving{trainer_class.__name__}", (PreserveMixin, trainer_class), attrs)


def accuracy(model, tokenizer, rows: list[dict], task: str, model_labels: list[str], max_length: int) -> float:
    """Accuracy (token accuracy for tagging) of `model` on rows, comparing label names; unknown gold names
    count as errors."""
    if not rows:
        return float("nan")
    index = {n: i for i, n in enumerate(model_labels)}
    gold_key = "tags" if task == TOK else "label"
    encoded_rows = []
    for r in rows:
        r = dict(r)
        if task == TOK:
            r["tags"] = [t if t in index else model_labels[0] for t in r["tags"]]
        else:
            r["label"] = r["label"] if r["label"] in index else model_labels[0]
        encoded_rows.append(r)
    ds, _ = encode_rows(encoded_rows, task, tokenizer, max_length, index, False)
    logits = run_batches(model, ds, collator_for(task, tokenizer), 64)
    correct = total = 0
    for row, lg, labels in zip(rows, logits, ds["labels"]):
        if task == TOK:
            positions = [i for i, lab in enumerate(labels) if lab != -100]
            preds = [model_labels[int(lg[i].argmax())] for i in positions]
            gold = row[gold_key][: len(preds)]
            correct += sum(p == g for p, g in zip(preds, gold))
            total += len(gold)
        else:
            correct += model_labels[int(np.argmax(lg))] == row[gold_key]
            total += 1
    return correct / max(total, 1)
