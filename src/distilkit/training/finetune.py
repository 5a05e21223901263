"""`distilkit finetune`: train an encoder with a task head on labelled data, on the Hugging Face Trainer.

Order matters for the "nothing half-written" rule: options, output folder, model folder and data are all
checked before the run folder is created; training then happens in `.<name>.partial/` and the folder is
renamed into place only when the model, metrics and config are written.
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path

import torch

from distilkit.config import FinetuneConfig
from distilkit.data.dataset import load_task_data
from distilkit.data.encode import collator_for, encode_splits
from distilkit.errors import DistilkitError
from distilkit.evaluate.metrics import format_table, plot_confusion_matrix
from distilkit.models import ALIASES, check_max_length, freeze, load_model, load_tokenizer, resolve_model
from distilkit.runs import RunFolder, folder_bytes
from distilkit.training.adversarial import with_adversarial
from distilkit.training.trainer_setup import (
    EpochTimer,
    compute_metrics_fn,
    count_parameters,
    full_metrics,
    metric_choice,
    preprocess_logits,
    tensorboard_callback,
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
    return str(Path(resolved_path).resolve()) if Path(resolved_path).is_dir() and given not in ALIASES else given


def continual_before(cfg: FinetuneConfig, previous, data) -> dict:
    """Check --continue-from data, add --replay rows, and measure the previous model on old and new test data."""
    from distilkit.training import continual

    if data.task != previous.task:
        raise DistilkitError(
            f"--continue-from {cfg.continue_from}: that run is {previous.task}, the new data is "
            f"{data.task}; continue a run of the same task"
        )
    old_test = continual.read_sample(Path(cfg.continue_from), "test")
    if cfg.replay:
        old_train = continual.read_sample(Path(cfg.continue_from), "train")
        data.splits["train"] = data.splits["train"] + random.Random(cfg.seed).sample(
            old_train, min(cfg.replay, len(old_train))
        )
        print(f"replay: {min(cfg.replay, len(old_train))} old training examples mixed in", flush=True)
    new_test = data.splits.get("test", [])

    def acc(rows):
        return continual.accuracy(previous.model, previous.tokenizer, rows, data.task, previous.labels, cfg.max_length)

    return {"old_test": old_test, "old_task_before": acc(old_test), "new_task_before": acc(new_test)}


def continual_after(cfg: FinetuneConfig, before: dict, model, tokenizer, data) -> dict:
    from distilkit.training import continual

    def acc(rows):
        return continual.accuracy(model, tokenizer, rows, data.task, data.labels, cfg.max_length)

    out = {
        "old_task": {
            "before": before["old_task_before"],
            "after": acc(before["old_test"]),
            "examples": len(before["old_test"]),
        },
        "new_task": {
            "before": before["new_task_before"],
            "after": acc(data.splits.get("test", [])),
            "examples": len(data.splits.get("test", [])),
        },
        "preserve": cfg.preserve,
        "replay": cfg.replay,
    }
    out["old_task"]["forgetting"] = out["old_task"]["before"] - out["old_task"]["after"]
    print(
        f"continual: old task {100 * out['old_task']['before']:.1f}% → {100 * out['old_task']['after']:.1f}%, "
        f"new task {100 * out['new_task']['before']:.1f}% → {100 * out['new_task']['after']:.1f}%",
        flush=True,
    )
    return out


def finetune(cfg: FinetuneConfig, resolved: dict | None = None) -> Path:
    """Fine-tune `cfg.model` on `cfg.data`; returns the finished run folder."""
    from transformers import EarlyStoppingCallback, Trainer, set_seed

    run = RunFolder(cfg.output, overwrite=cfg.overwrite, resume=cfg.resume)
    run.check()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    previous = None
    if cfg.continue_from:
        from distilkit.training import continual

        previous = continual.load_previous(cfg.continue_from)
        model_path = previous.path
        if (Path(model_path) / "distilkit_adapter.json").exists():
            raise DistilkitError(
                f"--continue-from {cfg.continue_from}: an adapter run; merge it first (distilkit merge)"
            )
        print(f"continuing from {cfg.continue_from} ({len(previous.labels)} labels)", flush=True)
    else:
        model_path = resolve_model(cfg.model)
    check_max_length(cfg.max_length, model_path)
    data = load_task_data(
        cfg, seed=cfg.seed, for_training=True, known_labels=previous.labels if previous is not None else None
    )
    if previous is not None:
        before = continual_before(cfg, previous, data)
    tokenizer = load_tokenizer(model_path)
    encoded, truncated = encode_splits(data, tokenizer, cfg.max_length)
    print(describe_data(data, truncated, cfg.max_length), flush=True)

    set_seed(cfg.seed)
    model = load_model(model_path, data.task, data.labels, data.regression, cfg.dropout)
    if previous is not None:
        continual.keep_old_head_rows(model, previous.model, len(previous.labels))
    frozen = freeze(model, cfg.freeze_embeddings, cfg.freeze_layers)
    if cfg.peft:
        from distilkit import adapters

        model = adapters.apply(model, cfg, data.task)
    total, trainable = count_parameters(model)
    print(
        f"model: {cfg.model} — {total / 1e6:.2f}M parameters, {trainable / 1e6:.2f}M trainable"
        + (f" ({frozen / 1e6:.2f}M frozen)" if frozen else "")
        + (f" — {cfg.peft}: {100 * trainable / total:.2f}% of the parameters train" if cfg.peft else ""),
        flush=True,
    )

    metric, greater = metric_choice(data, cfg)
    has_dev = "dev" in encoded
    work = run.prepare(resolved if resolved is not None else dataclasses.asdict(cfg))
    try:
        args = training_arguments(cfg, work / "checkpoints", metric, greater, has_dev)
        timer = EpochTimer()
        callbacks = [tensorboard_callback(work / "logs"), timer]
        if cfg.early_stopping:
            if not has_dev:
                raise DistilkitError("--early-stopping needs a dev split: pass --dev-file or a --split with a dev part")
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping))
        trainer_class = with_adversarial(
            Trainer, cfg.adversarial, cfg.adversarial_epsilon, cfg.pgd_steps, cfg.pgd_alpha
        )
        if previous is not None and cfg.preserve == "kd":
            trainer_class = continual.with_preserve(
                trainer_class,
                previous.model,
                len(previous.labels),
                cfg.preserve_weight,
                2.0,
                data.task == "token-classification",
            )
        trainer = trainer_class(
            model=model,
            args=args,
            train_dataset=encoded["train"],
            eval_dataset=encoded.get("dev"),
            data_collator=collator_for(data.task, tokenizer),
            processing_class=tokenizer,
            compute_metrics=compute_metrics_fn(data),
            preprocess_logits_for_metrics=preprocess_logits(data.regression),
            callbacks=callbacks,
        )
        if trainer.args.metric_for_best_model and has_dev:
            print(f"best model chosen by dev {metric} ({'higher' if greater else 'lower'} is better)", flush=True)
        checkpoint = run.last_checkpoint() if cfg.resume else None
        if cfg.resume:
            print(
                f"resuming from {checkpoint}" if checkpoint else "nothing to resume: starting from scratch", flush=True
            )
        started = time.perf_counter()
        train_out = trainer.train(resume_from_checkpoint=checkpoint)
        elapsed = time.perf_counter() - started

        main = trainer.is_world_process_zero()  # under accelerate launch only rank 0 writes the run folder
        if cfg.peft:  # the adapter alone, with a pointer to its base
            if main:
                from distilkit import adapters

                adapters.save_adapter(
                    trainer.model, work / "model", cfg.peft, base_pointer(cfg.model, model_path), data.task
                )
        else:
            trainer.save_model(str(work / "model"))
        if main:
            tokenizer.save_pretrained(str(work / "model"))
        metrics = {
            "model": cfg.model,
            "data": data.name,
            "task": data.task,
            "regression": data.regression,
            "labels": data.labels,
            "parameters": total,
            "trainable_parameters": trainable,
            "peft": cfg.peft,
            "model_bytes": folder_bytes(work / "model"),
            "train": {
                "loss": float(train_out.training_loss),
                "epochs": float(trainer.state.epoch or 0),
                "steps": int(trainer.state.global_step),
                "wall_seconds": round(elapsed, 1),
                "epoch_seconds": timer.seconds,
                "examples": len(encoded["train"]),
            },
            "truncated": truncated,
            "best_checkpoint_metric": {metric: trainer.state.best_metric} if has_dev else None,
        }
        for split in ("dev", "test"):
            if split in encoded:
                metrics[split] = full_metrics(trainer, encoded[split], data)  # collective: every rank runs it
                if main and not data.regression:
                    plot_confusion_matrix(
                        metrics[split], work / f"confusion_matrix_{split}.png", f"{data.name} {split}"
                    )
        if previous is not None:
            metrics["continual"] = continual_after(cfg, before, trainer.model, tokenizer, data)
        if main:
            from distilkit.training.continual import save_data_sample

            save_data_sample(work, data, cfg.seed)
            run.write_results(metrics, resolved if resolved is not None else dataclasses.asdict(cfg))
    except DistilkitError:
        run.abort()
        raise
    if not main:
        return run.final
    final = run.finish()
    last = "test" if "test" in metrics else "dev" if "dev" in metrics else None
    if last:
        print(format_table(metrics[last], title=f"\n{data.name} {last} split"))
    print(f"\nrun folder: {final} (model in {final / 'model'})")
    return final
