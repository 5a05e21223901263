"""`distilkit finetune`: train an encoder with a task head on labelled data, on the Hugging Face Trainer.

Order matters for the "nothing half-written" rule: options, output folder, model folder and data are all
checked before the run folder is created; training then happens in `.<name>.partial/` and the folder is
renamed into place only when the model, metrics and config are written.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from distilkit.adversarial import with_adversarial
from distilkit.config import FinetuneConfig
from distilkit.data.dataset import load_task_data
from distilkit.data.encode import collator_for, encode_splits
from distilkit.errors import DistilkitError
from distilkit.evaluate.metrics import format_table, plot_confusion_matrix
from distilkit.models import ALIASES, freeze, load_model, load_tokenizer, resolve_model
from distilkit.runs import RunFolder
from distilkit.trainer_setup import (
    compute_metrics_fn,
    count_parameters,
    full_metrics,
    metric_choice,
    preprocess_logits,
    EpochTimer,
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
            lines.append(f"truncated: {n} of {total} {split} examples ({100 * n / total:.1f}%) exceed {max_length} tokens")
    return "\n".join(lines)


def base_pointer(given: str, resolved_path: str) -> str:
    """How an adapter refers to its base: aliases and hub ids as given, folders as absolute paths."""
    return str(Path(resolved_path).resolve()) if Path(resolved_path).is_dir() and given not in ALIASES else given


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def finetune(cfg: FinetuneConfig, resolved: dict | None = None) -> Path:
    """Fine-tune `cfg.model` on `cfg.data`; returns the finished run folder."""
    from transformers import EarlyStoppingCallback, Trainer, set_seed

    run = RunFolder(cfg.output, overwrite=cfg.overwrite, resume=cfg.resume)
    run.check()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model_path = resolve_model(cfg.model)
    data = load_task_data(cfg, seed=cfg.seed, for_training=True)
    tokenizer = load_tokenizer(model_path)
    encoded, truncated = encode_splits(data, tokenizer, cfg.max_length)
    print(describe_data(data, truncated, cfg.max_length), flush=True)

    set_seed(cfg.seed)
    model = load_model(model_path, data.task, data.labels, data.regression, cfg.dropout)
    frozen = freeze(model, cfg.freeze_embeddings, cfg.freeze_layers)
    if cfg.peft:
        from distilkit import adapters

        model = adapters.apply(model, cfg, data.task)
    total, trainable = count_parameters(model)
    print(f"model: {cfg.model} — {total / 1e6:.2f}M parameters, {trainable / 1e6:.2f}M trainable"
          + (f" ({frozen / 1e6:.2f}M frozen)" if frozen else "")
          + (f" — {cfg.peft}: {100 * trainable / total:.2f}% of the parameters train" if cfg.peft else ""), flush=True)

    metric, greater = metric_choice(data, cfg)
    has_dev = "dev" in encoded
    work = run.prepare()
    try:
        args = training_arguments(cfg, work / "checkpoints", metric, greater, has_dev)
        timer = EpochTimer()
        callbacks = [tensorboard_callback(work / "logs"), timer]
        if cfg.early_stopping:
            if not has_dev:
                raise DistilkitError("--early-stopping needs a dev split: pass --dev-file or a --split with a dev part")
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping))
        trainer_class = with_adversarial(Trainer, cfg.adversarial, cfg.adversarial_epsilon, cfg.pgd_steps,
                                         cfg.pgd_alpha)
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
            print(f"resuming from {checkpoint}" if checkpoint else "nothing to resume: starting from scratch", flush=True)
        started = time.perf_counter()
        train_out = trainer.train(resume_from_checkpoint=checkpoint)
        elapsed = time.perf_counter() - started

        main = trainer.is_world_process_zero()  # under accelerate launch only rank 0 writes the run folder
        if cfg.peft:  # the adapter alone, with a pointer to its base
            if main:
                from distilkit import adapters

                adapters.save_adapter(trainer.model, work / "model", cfg.peft, base_pointer(cfg.model, model_path),
                                      data.task)
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
                    plot_confusion_matrix(metrics[split], work / f"confusion_matrix_{split}.png", f"{data.name} {split}")
        if main:
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
