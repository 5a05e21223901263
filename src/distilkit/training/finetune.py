"""`distilkit finetune`: train an encoder with a task head on labelled data, on the Hugging Face Trainer.

`finetune` fills in the steps of the training skeleton (training/job.py: prepare → train → save → results →
summary), which owns the run folder and the "nothing half-written" rule.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from distilkit.config import FinetuneConfig
from distilkit.console import show
from distilkit.data.dataset import groups_of, load_task_data
from distilkit.data.encode import collator_for, encode_splits
from distilkit.errors import DistilkitError
from distilkit.evaluation.metrics import format_table, plot_confusion_matrix
from distilkit.evaluation.pooled import write_predictions
from distilkit.files import folder_bytes
from distilkit.models import (
    ALIASES,
    SPLIT_ALIASES,
    check_max_length,
    check_weights_readable,
    freeze,
    load_model,
    load_tokenizer,
    resolve_model,
)
from distilkit.training.adversarial import with_adversarial
from distilkit.training.guard import check_finite_weights, guarded
from distilkit.training.job import TrainingJob
from distilkit.training.repeats import run_repeated
from distilkit.training.tracking import use_trackers, write_trainer_files
from distilkit.training.trainer_setup import (
    EpochTimer,
    compute_metrics_fn,
    count_parameters,
    full_metrics,
    metric_choice,
    preprocess_logits,
    training_arguments,
)


def describe_data(data, truncated: dict, max_length: int) -> str:
    sizes = ", ".join(f"{s} {len(rows)}" for s, rows in data.splits.items())
    kind = "regression" if data.regression else f"{len(data.labels)} labels"
    lines = [f"data: {data.name} — {data.task}, {kind}{' (text pairs)' if data.is_pair else ''}; {sizes}"]
    if not data.regression:
        shown = ", ".join(data.labels[:15]) + (" ..." if len(data.labels) > 15 else "")
        lines.append(f"labels: {shown}")
    for split, n in truncated.items():
        if n:
            total = len(data.splits[split])
            lines.append(
                f"truncated: {n} of {total} {split} examples ({100 * n / total:.1f}%) exceed {max_length} tokens"
            )
    return "\n".join(lines)


def base_pointer(given: str, resolved_path: str) -> str:
    """How an adapter refers to its base: aliases and hub ids as given, folders as absolute paths."""
    aliased = given in ALIASES or given in SPLIT_ALIASES
    return str(Path(resolved_path).resolve()) if Path(resolved_path).is_dir() and not aliased else given


def continual_before(cfg: FinetuneConfig, previous, data) -> dict:
    """Check --continue-from data, add --replay rows, and measure the previous model on old and new test data."""
    from distilkit.training import continual

    if data.task != previous.task:
        raise DistilkitError(
            f"--continue-from {cfg.continue_from}: that run is {previous.task}, the new data is "
            f"{data.task}; continue a run of the same task"
        )
    kept = continual.has_sample(Path(cfg.continue_from))
    if cfg.replay and not kept:
        raise DistilkitError(
            f"--replay {cfg.replay}: {cfg.continue_from} kept no data sample to replay (it ran without "
            "--keep-data-sample); fine-tune it again with --keep-data-sample, or drop --replay"
        )
    old_test = continual.read_sample(Path(cfg.continue_from), "test") if kept else None
    if not kept:
        print(
            f"note: {cfg.continue_from} kept no data sample (--keep-data-sample), so forgetting of its task is not "
            "measured",
            flush=True,
        )
    if cfg.replay:
        old_train = continual.read_sample(Path(cfg.continue_from), "train")
        data.splits["train"] = data.splits["train"] + random.Random(cfg.seed).sample(
            old_train, min(cfg.replay, len(old_train))
        )
        print(f"replay: {min(cfg.replay, len(old_train))} old training examples mixed in", flush=True)
    new_test = data.splits.get("test", [])

    def acc(rows):
        return continual.accuracy(previous.model, previous.tokenizer, rows, data.task, previous.labels, cfg.max_length)

    old_before = acc(old_test) if old_test is not None else None
    return {"old_test": old_test, "old_task_before": old_before, "new_task_before": acc(new_test)}


def continual_after(cfg: FinetuneConfig, before: dict, model, tokenizer, data) -> dict:
    from distilkit.training import continual

    def acc(rows):
        return continual.accuracy(model, tokenizer, rows, data.task, data.labels, cfg.max_length)

    old_test = before["old_test"]
    out = {
        "old_task": None  # not measured: the run continued from kept no data sample
        if old_test is None
        else {"before": before["old_task_before"], "after": acc(old_test), "examples": len(old_test)},
        "new_task": {
            "before": before["new_task_before"],
            "after": acc(data.splits.get("test", [])),
            "examples": len(data.splits.get("test", [])),
        },
        "preserve": cfg.preserve,
        "replay": cfg.replay,
    }
    old = out["old_task"]
    if old is not None:
        old["forgetting"] = old["before"] - old["after"]
    print(
        "continual: "
        + (f"old task {100 * old['before']:.1f}% → {100 * old['after']:.1f}%, " if old is not None else "")
        + f"new task {100 * out['new_task']['before']:.1f}% → {100 * out['new_task']['after']:.1f}%",
        flush=True,
    )
    return out


def finetune(cfg: FinetuneConfig, resolved: dict | None = None) -> Path:
    """Fine-tune `cfg.model` on `cfg.data`; returns the finished run folder."""
    return run_repeated(FinetuneJob, cfg, resolved)


class FinetuneJob(TrainingJob):
    """`finetune` as the steps of training/job.py: a model with a task head trained on labels."""

    def __init__(self, cfg: FinetuneConfig):
        self.cfg = cfg
        self.previous = None  # the run continued from (--continue-from)

    def prepare(self) -> None:
        from transformers import set_seed

        cfg = self.cfg
        self.model_path = self.resolve_model_path()
        cfg.max_length = check_max_length(cfg.max_length, self.model_path)
        check_weights_readable(self.model_path)  # before the data is tokenized, not when the model is built
        known = self.previous.labels if self.previous is not None else None
        self.data = data = load_task_data(
            cfg, seed=cfg.split_seed, for_training=True, known_labels=known, fold=cfg.this_fold
        )
        if self.previous is not None:
            self.before = continual_before(cfg, self.previous, data)
        self.tokenizer = load_tokenizer(self.model_path)
        self.encoded, self.truncated = encode_splits(data, self.tokenizer, cfg.max_length)
        print(describe_data(data, self.truncated, cfg.max_length), flush=True)
        set_seed(cfg.seed)
        self.model = self.build_model()
        self.metric, self.greater = metric_choice(data, cfg)
        self.has_dev = "dev" in self.encoded

    def resolve_model_path(self) -> str:
        """The model to start from: --model, or the model of the run given with --continue-from."""
        cfg = self.cfg
        if not cfg.continue_from:
            return resolve_model(cfg.model)
        from distilkit.training import continual

        self.previous = continual.load_previous(cfg.continue_from)
        if (Path(self.previous.path) / "distilkit_adapter.json").exists():
            raise DistilkitError(
                f"--continue-from {cfg.continue_from}: an adapter run; merge it first (distilkit merge)"
            )
        print(f"continuing from {cfg.continue_from} ({len(self.previous.labels)} labels)", flush=True)
        return self.previous.path

    def build_model(self):
        """The model with its task head, frozen parts and PEFT method; prints its size."""
        cfg, data = self.cfg, self.data
        model = load_model(self.model_path, data.task, data.labels, data.regression, cfg.dropout)
        if self.previous is not None:
            from distilkit.training import continual

            continual.keep_old_head_rows(model, self.previous.model, len(self.previous.labels))
        frozen = freeze(model, cfg.freeze_embeddings, cfg.freeze_layers)
        if cfg.peft:
            from distilkit import adapters

            model = adapters.apply(model, cfg, data.task)
        self.total, self.trainable = total, trainable = count_parameters(model)
        print(
            f"model: {cfg.model} — {total / 1e6:.2f}M parameters, {trainable / 1e6:.2f}M trainable"
            + (f" ({frozen / 1e6:.2f}M frozen)" if frozen else "")
            + (f" — {cfg.peft}: {100 * trainable / total:.2f}% of the parameters train" if cfg.peft else ""),
            flush=True,
        )
        return model

    def trainer_class(self):
        """Trainer, with adversarial training and Learning without Forgetting when asked for, stopping at the first
        non-finite loss or gradient (training/guard.py)."""
        from transformers import Trainer

        cfg = self.cfg
        trainer_class = with_adversarial(
            Trainer, cfg.adversarial, cfg.adversarial_epsilon, cfg.pgd_steps, cfg.pgd_alpha
        )
        if self.previous is not None and cfg.preserve == "kd":
            from distilkit.training import continual

            token_level = self.data.task == "token-classification"
            trainer_class = continual.with_preserve(
                trainer_class, self.previous.model, len(self.previous.labels), cfg.preserve_weight, 2.0, token_level
            )
        return guarded(trainer_class)

    def train(self, work: Path, run) -> None:
        from transformers import EarlyStoppingCallback

        cfg, data = self.cfg, self.data
        args = training_arguments(cfg, work / "checkpoints", self.metric, self.greater, self.has_dev)
        self.timer = EpochTimer()
        callbacks = [self.timer]
        if cfg.early_stopping:
            if not self.has_dev:
                raise DistilkitError("--early-stopping needs a dev split: pass --dev-file or a --split with a dev part")
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping))
        self.trainer = trainer = self.trainer_class()(
            model=self.model,
            args=args,
            train_dataset=self.encoded["train"],
            eval_dataset=self.encoded.get("dev"),
            data_collator=collator_for(data.task, self.tokenizer),
            processing_class=self.tokenizer,
            compute_metrics=compute_metrics_fn(data),
            preprocess_logits_for_metrics=preprocess_logits(data.regression),
            callbacks=callbacks,
        )
        use_trackers(trainer, work / "logs", Path(cfg.output).name)
        if trainer.args.metric_for_best_model and self.has_dev:
            print(
                f"best model chosen by dev {self.metric} ({'higher' if self.greater else 'lower'} is better)",
                flush=True,
            )
        checkpoint = run.last_checkpoint() if cfg.resume else None
        if cfg.resume:
            print(
                f"resuming from {checkpoint}" if checkpoint else "nothing to resume: starting from scratch", flush=True
            )
        started = time.perf_counter()
        self.train_out = trainer.train(resume_from_checkpoint=checkpoint)
        self.elapsed = time.perf_counter() - started
        self.is_main = trainer.is_world_process_zero()  # under accelerate launch only rank 0 writes the run folder

    def save(self, work: Path) -> None:
        cfg = self.cfg
        check_finite_weights(self.trainer.model)
        if cfg.peft:  # the adapter alone, with a pointer to its base
            if self.is_main:
                from distilkit import adapters

                pointer = base_pointer(cfg.model, self.model_path)
                adapters.save_adapter(self.trainer.model, work / "model", cfg.peft, pointer, self.data.task)
        else:
            self.trainer.save_model(str(work / "model"))
        if self.is_main:
            self.tokenizer.save_pretrained(str(work / "model"))

    def results(self, work: Path) -> dict:
        cfg, data, trainer = self.cfg, self.data, self.trainer
        metrics = {
            "model": cfg.model,
            "data": data.name,
            "task": data.task,
            "regression": data.regression,
            "labels": data.labels,
            "parameters": self.total,
            "trainable_parameters": self.trainable,
            "peft": cfg.peft,
            "model_bytes": folder_bytes(work / "model"),
            "train": {
                "loss": float(self.train_out.training_loss),
                "epochs": float(trainer.state.epoch or 0),
                "steps": int(trainer.state.global_step),
                "wall_seconds": round(self.elapsed, 1),
                "epoch_seconds": self.timer.seconds,
                "examples": len(self.encoded["train"]),
            },
            "truncated": self.truncated,
            "best_checkpoint_metric": {self.metric: trainer.state.best_metric} if self.has_dev else None,
        }
        evals = {}  # the Trainer's metrics of dev (as eval_*) and test (as test_*), for the standard result files
        for split in ("dev", "test"):
            if split in self.encoded:
                prefix = "eval" if split == "dev" else "test"  # collective: every rank runs it
                groups = groups_of(data.splits[split])
                metrics[split], evals[prefix], record = full_metrics(trainer, self.encoded[split], data, prefix, groups)
                if split == "test" and self.is_main and cfg.folds:  # pooled over the folds (training/repeats.py)
                    write_predictions(work, {"model": record})
                if self.is_main and not data.regression:
                    plot_confusion_matrix(
                        metrics[split], work / f"confusion_matrix_{split}.png", data.split_name(split)
                    )
        if self.previous is not None:
            metrics["continual"] = continual_after(cfg, self.before, trainer.model, self.tokenizer, data)
        if self.is_main and cfg.keep_data_sample:  # beside model/, never in it, and only when asked for
            from distilkit.training.continual import save_data_sample

            save_data_sample(work, data, cfg.seed)
        if self.is_main:
            train = {**self.train_out.metrics, "train_samples": len(self.encoded["train"])}
            write_trainer_files(work, trainer.state, train, evals)
        return metrics

    def write_card(self, work: Path, metrics: dict, config: dict) -> None:
        from distilkit.hub.card_kinds import finetune_card

        finetune_card(work, config, metrics)

    def summary(self, final: Path, metrics: dict) -> None:
        last = "test" if "test" in metrics else "dev" if "dev" in metrics else None
        if last:
            show(format_table(metrics[last], title=f"\n{self.data.split_name(last)}"))
        show(f"\nrun folder: {final} (model in {final / 'model'})")
