"""One TextBrewer 0.2.1 distillation run for benchmarks/peer_textbrewer.py; runs in benchmarks/.venv-textbrewer.

    benchmarks/.venv-textbrewer/bin/python benchmarks/peer_textbrewer_run.py --teacher MODEL_FOLDER \
        --train-file train.jsonl --test-file test.jsonl --max-length 128 --output DIR --result result.json

It imports nothing from distilkit (distilkit is not installed in that env): the job is written the way a
TextBrewer user writes it, after TextBrewer's own examples:
- teacher: the fine-tuned sequence classifier, loaded with attn_implementation="eager" so that `attentions`
  are returned (softmax probabilities), run live on every batch (no cache);
- student: the teacher's config with num_hidden_layers=3, initialised with the teacher's weights, encoder
  layers 0,2,4 → 0,1,2 (embeddings, pooler and classifier head copied as they are);
- data: texts tokenized once, padded and truncated to --max-length, in a TensorDataset; a shuffled DataLoader;
  a batch_postprocessor turns each tuple into the model's keyword arguments;
- GeneralDistiller, one stage: kd_loss_type "ce" (soft cross-entropy) at temperature --temperature, weight 1,
  hard_label_weight 0; intermediate_matches: hidden state 0 ↔ teacher hidden state 0 (embeddings,
  hidden_mse), and for student layer m (copied from teacher layer 2m): hidden_mse between hidden state m+1 and
  teacher hidden state 2m+1, attention_mse between attention m and teacher attention 2m; weight 1 each, padding
  masked with the attention mask (inputs_mask);
- AdamW with --weight-decay on all but biases and LayerNorm weights (as the HF Trainer, which distilkit runs
  on, groups them), linear schedule with --warmup (a fraction of all steps, rounded up, as the HF Trainer
  does), gradient clipping at --max-grad-norm (≤ 0: none); peer_textbrewer.py passes distilkit's values;
- TextBrewer saves the student's state dict after each epoch (its default, ckpt_frequency 1) and writes
  TensorBoard logs, as distilkit saves an epoch checkpoint and logs.
Timed: distiller.train() alone (model loading, tokenization and the test evaluation are outside), with the
end of each epoch marked by TextBrewer's checkpoint callback. Test accuracy: argmax of the student's logits on
the test file at the same --max-length. Writes one JSON object to --result and prints it as the last line.

Compatibility shims for TextBrewer 0.2.1 on torch 2.13 / transformers 5 (monkeypatches applied below, never
edits of site-packages): none were needed. TextBrewer imports and trains as released: its
`from tensorboardX import SummaryWriter` falls back to torch.utils.tensorboard, apex is optional, its
`is not 'none'` comparisons only raise SyntaxWarnings (silenced here), and transformers 5 still accepts
`output_hidden_states=True, output_attentions=True` as keyword arguments of the forward pass.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import re
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path

import torch

SHIMS: list[str] = []  # each applied compatibility shim, by name (see the docstring); none so far


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", required=True, help="HF model folder of the fine-tuned teacher")
    parser.add_argument("--train-file", required=True, help="JSONL with text and label")
    parser.add_argument("--test-file", required=True, help="JSONL with text and label")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--layers", default="0,2,4", help="teacher layers the student is copied from")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=float, default=0.0, help="fraction of all steps (< 1) or a step count")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--max-grad-norm", type=float, default=-1.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (benchmarks/gpu_check.py)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", help="folder for TextBrewer's checkpoints and logs (default: a temp folder)")
    parser.add_argument("--result", help="write the JSON result here too")
    return parser.parse_args(argv)


def read_jsonl(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def encode(tokenizer, rows: list[dict], label2id: dict, max_length: int) -> torch.utils.data.TensorDataset:
    """Pre-padded tensors, as a typical TextBrewer user prepares them: (input_ids, attention_mask, type ids, label)."""
    enc = tokenizer(
        [r["text"] for r in rows], max_length=max_length, padding="max_length", truncation=True, return_tensors="pt"
    )
    types = enc.get("token_type_ids", torch.zeros_like(enc["input_ids"]))
    labels = torch.tensor([label2id[str(r["label"])] for r in rows])
    return torch.utils.data.TensorDataset(enc["input_ids"], enc["attention_mask"], types, labels)


def to_inputs(batch) -> dict:
    """TextBrewer's batch_postprocessor: the TensorDataset tuple → the model's keyword arguments (no labels:
    hard_label_weight is 0, so the task loss is not needed)."""
    input_ids, attention_mask, token_type_ids, _labels = batch
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def adaptor(batch: dict, outputs) -> dict:
    """What GeneralDistiller reads from a model's outputs; inputs_mask masks padding in the match losses."""
    return {
        "logits": outputs.logits,
        "hidden": outputs.hidden_states,
        "attention": outputs.attentions,
        "inputs_mask": batch["attention_mask"],
    }


def build_student(teacher, layers: list[int]):
    """The teacher's config with len(layers) layers; teacher weights copied, encoder layer layers[i] → i."""
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layers)
    student = AutoModelForSequenceClassification.from_config(config, attn_implementation="eager")
    source = {c: i for i, c in enumerate(layers)}
    pattern = re.compile(r"(\.layer\.)(\d+)\.")
    state = {}
    for key, value in teacher.state_dict().items():
        match = pattern.search(key)
        if match is None:
            state[key] = value.clone()
        elif int(match.group(2)) in source:
            state[pattern.sub(rf"\g<1>{source[int(match.group(2))]}.", key, count=1)] = value.clone()
    student.load_state_dict(state, strict=True)
    return student


def intermediate_matches(layers: list[int]) -> list[dict]:
    """Embeddings 0 ↔ 0; student layer m ↔ the teacher layer c it was copied from: hidden m+1 ↔ c+1, attention m ↔ c."""
    matches = [{"layer_T": 0, "layer_S": 0, "feature": "hidden", "loss": "hidden_mse", "weight": 1}]
    for m, c in enumerate(layers):
        matches.append({"layer_T": c + 1, "layer_S": m + 1, "feature": "hidden", "loss": "hidden_mse", "weight": 1})
        matches.append({"layer_T": c, "layer_S": m, "feature": "attention", "loss": "attention_mse", "weight": 1})
    return matches


def optimizer_for(model, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and LayerNorm weights (the HF Trainer's grouping)."""
    no_decay = {
        f"{name}.{p}" if name else p
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.LayerNorm)
        for p, _ in module.named_parameters(recurse=False)
    }
    decay = [p for n, p in model.named_parameters() if n not in no_decay and not n.endswith("bias")]
    rest = [p for n, p in model.named_parameters() if n in no_decay or n.endswith("bias")]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def distil(args, teacher, student, train_set) -> dict:
    """GeneralDistiller.train() on the pre-padded training set; returns its wall time and epoch marks."""
    import textbrewer
    from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig
    from transformers import get_linear_schedule_with_warmup

    layers = [int(x) for x in args.layers.split(",")]
    generator = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True, generator=generator)
    steps = len(loader) * args.epochs
    warmup = math.ceil(args.warmup * steps) if args.warmup < 1 else int(args.warmup)
    output = Path(args.output or tempfile.mkdtemp(prefix="textbrewer-run-"))
    train_config = TrainingConfig(device=args.device, output_dir=str(output), log_dir=str(output / "logs"))
    distill_config = DistillationConfig(
        temperature=args.temperature,
        kd_loss_type="ce",
        kd_loss_weight=1,
        hard_label_weight=0,
        intermediate_matches=intermediate_matches(layers),
    )
    distiller = GeneralDistiller(train_config, distill_config, teacher, student, adaptor, adaptor)
    marks: list[float] = []
    started = time.perf_counter()
    with distiller:  # as TextBrewer's docs write it: teacher in eval mode, student in train mode, restored after
        distiller.train(
            optimizer_for(student, args.lr, args.weight_decay),
            loader,
            num_epochs=args.epochs,
            scheduler_class=get_linear_schedule_with_warmup,
            scheduler_args={"num_warmup_steps": warmup, "num_training_steps": steps},
            max_grad_norm=args.max_grad_norm,
            callback=lambda model, step: marks.append(time.perf_counter()),
            batch_postprocessor=to_inputs,
            output_hidden_states=True,
            output_attentions=True,
        )
    wall = time.perf_counter() - started
    epochs = [round(b - a, 2) for a, b in zip([started] + marks[:-1], marks)]
    return {
        "wall_seconds": round(wall, 2),
        "epoch_seconds": epochs,
        "steps": steps,
        "warmup_steps": warmup,
        "output": str(output),
        "textbrewer_version": textbrewer.__version__,
    }


@torch.no_grad()
def accuracy(model, dataset, batch_size: int = 64) -> float:
    """Share of argmax(logits) == label on the pre-padded set."""
    model.eval()
    correct = 0
    device = next(model.parameters()).device
    for batch in torch.utils.data.DataLoader(dataset, batch_size):
        input_ids, attention_mask, token_type_ids, labels = (t.to(device) for t in batch)
        logits = model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits
        correct += int((logits.argmax(-1) == labels).sum())
    return correct / len(dataset)


def versions() -> dict:
    return {name: metadata.version(name) for name in ("textbrewer", "torch", "transformers")}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=SyntaxWarning)  # TextBrewer's `is not 'none'` comparisons
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    teacher = AutoModelForSequenceClassification.from_pretrained(args.teacher, attn_implementation="eager")
    label2id = {str(k): v for k, v in teacher.config.label2id.items()}
    student = build_student(teacher, [int(x) for x in args.layers.split(",")])
    train_set = encode(tokenizer, read_jsonl(args.train_file), label2id, args.max_length)
    test_set = encode(tokenizer, read_jsonl(args.test_file), label2id, args.max_length)
    run = distil(args, teacher, student, train_set)
    result = {
        "tool": "textbrewer",
        "versions": versions(),
        "shims": SHIMS,
        "train_examples": len(train_set),
        "epochs": args.epochs,
        **run,
        "samples_per_second": round(len(train_set) * args.epochs / run["wall_seconds"], 2),
        "test_examples": len(test_set),
        "test_accuracy": round(accuracy(student, test_set), 4),
        "teacher_test_accuracy": round(accuracy(teacher, test_set), 4),
        "student_parameters": sum(p.numel() for p in student.parameters()),
        "threads": torch.get_num_threads(),
    }
    text = json.dumps(result)
    if args.result:
        Path(args.result).write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
