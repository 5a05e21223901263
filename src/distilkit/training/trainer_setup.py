"""What every training command shares: TrainingArguments from `TrainOptions`, metrics hooks, precision.

Kept apart from `finetune` so that distillation (a Trainer subclass) builds its Trainer the same way.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from distilkit.config import TrainOptions
from distilkit.data.dataset import TaskData
from distilkit.evaluation.metrics import default_metric, scalar_metrics, task_metrics
from distilkit.models import native_bf16


def pick_precision(choice: str) -> str:
    """`auto`: bf16 autocast where the hardware does bf16 natively (`models.native_bf16`: GPUs that support it, CPUs
    with AVX512-BF16 or AMX), else fp32. Weights, optimizer state and the losses stay fp32 (mixed precision)."""
    on_gpu = torch.cuda.is_available()
    if choice != "auto":
        if choice == "fp16" and not on_gpu:
            print("note: --precision fp16 on CPU is usually much slower than fp32")
        if choice == "bf16" and not native_bf16():
            print("note: this machine has no native bf16 (no AVX512-BF16/AMX CPU, no bf16 GPU): bf16 is much slower")
        return choice
    if native_bf16():
        if not on_gpu:
            print("precision: bf16 autocast (this CPU does bf16 natively; --precision fp32 for full fp32)")
        return "bf16"
    return "fp32"


def several_processes() -> bool:
    """True under `accelerate launch` / torchrun with more than one process."""
    import os

    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def cpu_processes() -> bool:
    """Several processes on a machine without a GPU: accelerate then needs `cpu=True` to set up gloo (without it
    every process would train alone on all the data)."""
    return several_processes() and not torch.cuda.is_available()


def precision_of(args) -> str:
    """The precision the Trainer trains in ("bf16", "fp16" or "fp32"), from its TrainingArguments."""
    return "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"


def autocast(args):
    """The autocast context the Trainer trains under (`args` are its TrainingArguments), for work done outside
    the Trainer's own steps, such as building the teacher cache."""
    precision = precision_of(args)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=args.device.type, dtype=dtype, enabled=precision != "fp32")


def training_fields() -> set[str]:
    """The names of the Hugging Face TrainingArguments fields."""
    import dataclasses

    from transformers import TrainingArguments

    return {f.name for f in dataclasses.fields(TrainingArguments)}


def training_arguments(
    opts: TrainOptions,
    output_dir: Path,
    metric: str,
    greater_is_better: bool,
    has_dev: bool,
    cls: type | None = None,
    extra: dict | None = None,
):
    """TrainingArguments (or the subclass `cls`, with its own fields in `extra`) for distilkit's options."""
    from transformers import TrainingArguments

    cls = cls or TrainingArguments
    precision = pick_precision(opts.precision)
    every = "steps" if opts.save_steps else "epoch"
    strategy = every if has_dev else "no"  # keeping the best model needs evaluations where checkpoints are
    return cls(
        **(extra or {}),
        output_dir=str(output_dir),
        num_train_epochs=opts.epochs,
        learning_rate=opts.lr,
        per_device_train_batch_size=opts.batch_size,
        per_device_eval_batch_size=opts.eval_batch_size,
        gradient_accumulation_steps=opts.grad_accum,
        warmup_steps=opts.warmup if opts.warmup < 1 else int(opts.warmup),
        weight_decay=opts.weight_decay,
        max_grad_norm=opts.max_grad_norm,  # 0 disables clipping (the Trainer compares it with 0: never None)
        lr_scheduler_type="linear",
        eval_strategy=strategy,
        save_strategy=every,
        save_steps=opts.save_steps or 500,
        eval_steps=opts.save_steps,
        save_total_limit=2,
        load_best_model_at_end=has_dev,
        metric_for_best_model=metric if has_dev else None,
        greater_is_better=greater_is_better,
        logging_strategy="steps",
        logging_steps=opts.logging_steps,
        seed=opts.seed,
        data_seed=opts.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        # CPU autocast, and gloo between CPU processes, need it said explicitly
        use_cpu=(precision != "fp32" and not torch.cuda.is_available()) or cpu_processes(),
        train_sampling_strategy="group_by_length",
        # the trackers of --report-to; training/tracking.py places them (TensorBoard into the run's logs/)
        report_to=list(getattr(opts, "report_to", [])),
        run_name=Path(opts.output).name if getattr(opts, "output", None) else None,
        save_only_model=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def metric_choice(data: TaskData, opts: TrainOptions) -> tuple[str, bool]:
    metric, greater = default_metric(data.task, data.regression, data.is_bio)
    if opts.metric:
        metric = opts.metric.removeprefix("eval_")
        greater = metric not in ("mse", "mae", "loss")
    return metric, greater


def preprocess_logits(regression: bool):
    """Reduce logits to class ids on the fly, so evaluation does not keep every logit in memory."""

    def reduce(logits, labels):
        if isinstance(logits, tuple):
            logits = logits[0]
        return logits.squeeze(-1) if regression else logits.argmax(dim=-1)

    return reduce


def compute_metrics_fn(data: TaskData):
    def compute(eval_pred):
        preds, label_ids = eval_pred.predictions, eval_pred.label_ids
        return scalar_metrics(task_metrics(data.task, data.regression, data.labels, preds, label_ids, data.is_bio))

    return compute


def full_metrics(trainer, dataset, data: TaskData, prefix: str = "test", groups=None) -> tuple[dict, dict, dict]:
    """Predict a split: the complete metrics (per-class report, confusion matrix), the Trainer's own
    (`<prefix>_loss`, `<prefix>_accuracy`, `<prefix>_runtime`, ...: what `Trainer.evaluate` reports for eval), and
    the predictions (evaluation/pooled.py's record, for pooling folds). `groups`: one per example, for intervals
    over groups (--group-column)."""
    from distilkit.evaluation.pooled import prediction_record

    # in the dataset's order, for `groups` and pooled folds: the Trainer's eval sampler groups by length otherwise
    strategy, trainer.args.train_sampling_strategy = trainer.args.train_sampling_strategy, "sequential"
    try:
        out = trainer.predict(dataset, metric_key_prefix=prefix)
    finally:
        trainer.args.train_sampling_strategy = strategy
    predictions = np.asarray(out.predictions)
    metrics = task_metrics(
        data.task, data.regression, data.labels, predictions, out.label_ids, data.is_bio, True, groups
    )
    metrics["loss"] = float(out.metrics.get(f"{prefix}_loss", float("nan")))
    record = prediction_record(data.task, data.regression, data.labels, predictions, out.label_ids, groups)
    return metrics, {**out.metrics, f"{prefix}_samples": len(dataset)}, record


def tensorboard_callback(log_dir: Path):
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))


class EpochTimer(TrainerCallback):
    """Records the wall time of each training epoch (evaluation excluded) for metrics.json."""

    def __init__(self):
        self.seconds: list[float] = []
        self._start = None

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):
        if self._start is not None:
            self.seconds.append(round(time.perf_counter() - self._start, 2))


def count_parameters(model) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
