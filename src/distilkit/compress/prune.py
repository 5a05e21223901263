"""`distilkit prune`: score, remove, (optionally) recover, and write a run folder with a loadable model.

Order: heads and FFN neurons are scored on the importance split, then removed (structural); unstructured
magnitude pruning follows on what is left; then optional recovery (a short finetune, or logit KD from the
unpruned model through `distill`). Metrics before and after each step go to metrics.json.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

import torch

from distilkit.compress import pruning
from distilkit.compress.common import check_fraction, with_run_data
from distilkit.compress.options import PruneConfig
from distilkit.config import DataOptions, DistillConfig, FinetuneConfig, options_of
from distilkit.console import show
from distilkit.data.encode import collator_for, encode_rows
from distilkit.errors import DistilkitError
from distilkit.evaluation.evaluate import score_rows, splits_rows_for
from distilkit.evaluation.metrics import default_metric, headline
from distilkit.hub.card_kinds import prune_card
from distilkit.inference.embedding import is_embedding_model
from distilkit.inference.loading import MODEL_INPUTS, TrainedModel, load_trained
from distilkit.models.pruned import MODELING_FILE, modeling_source, remote_code_names, unpruned_class
from distilkit.runs import RunFolder


def importance_batches(trained, rows: list[dict], samples: int, batch_size: int, seed: int, max_length: int):
    rows = random.Random(seed).sample(rows, min(samples, len(rows)))
    dataset, _ = encode_rows(rows, trained.task, trained.tokenizer, max_length, trained.label2id, trained.regression)
    collator = collator_for(trained.task, trained.tokenizer)
    keep = [*MODEL_INPUTS, "labels"]
    for start in range(0, len(dataset), batch_size):
        yield collator(
            [
                {k: v for k, v in dataset[i].items() if k in keep}
                for i in range(start, min(start + batch_size, len(dataset)))
            ]
        )


def save_pruned(model, tokenizer, folder: Path, task: str, structural: bool) -> None:
    """A plain HF folder; pruned shapes go into config.json with the loader code beside it (see pruned_modeling)."""
    if structural:
        model.config.distilkit_pruning = pruning.shape_summary(model)
        base = unpruned_class(model)
        auto = (
            "AutoModelForTokenClassification"
            if task == "token-classification"
            else "AutoModelForSequenceClassification"
        )
        for key, value in remote_code_names(auto, base.__name__).items():
            setattr(model.config, key, value)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if structural:
        (folder / MODELING_FILE).write_text(modeling_source(base.__name__))


def recover(cfg: PruneConfig, opts: DataOptions, pruned_folder: Path, work: Path) -> dict:
    """Recovery training into work/recovery; returns its metrics. Its model replaces the pruned one."""
    data = {k: getattr(opts, k) for k in (f.name for f in dataclasses.fields(DataOptions))}
    train = dict(
        epochs=cfg.recover_epochs,
        lr=cfg.recover_lr,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        output=str(work / "recovery"),
        overwrite=True,
    )
    if cfg.recover == "finetune":
        from distilkit.training.finetune import finetune

        run_cfg = FinetuneConfig(**data, **train, model=str(pruned_folder))
        folder = finetune(run_cfg, dataclasses.asdict(run_cfg))
    else:
        from distilkit.distillation.distill import distill

        run_cfg = DistillConfig(**data, **train, teacher=cfg.model, student=str(pruned_folder), method="kd")
        folder = distill(run_cfg, dataclasses.asdict(run_cfg))
    return json.loads((Path(folder) / "metrics.json").read_text())


def evaluate_model(model, trained, data, rows, cfg) -> dict:
    view = TrainedModel(trained.path, trained.task, trained.labels, trained.regression, model.eval(), trained.tokenizer)
    metrics, _ = score_rows(view, data, rows, cfg.max_length, 64)
    name = default_metric(data.task, trained.regression, data.is_bio)[0]
    return {name: headline(metrics, name)}


def prune(cfg: PruneConfig, resolved: dict | None = None) -> Path:
    check_fraction(cfg.ffn, "--ffn", "FFN neurons")
    check_fraction(cfg.sparsity, "--sparsity", "weights")
    if not (cfg.heads or cfg.ffn or cfg.sparsity):
        raise DistilkitError("nothing to prune: pass --heads, --ffn and/or --sparsity")
    if cfg.task == "embedding" or is_embedding_model(cfg.model):
        from distilkit.compress.embedding_prune import prune_embedding

        return prune_embedding(cfg, resolved)
    run = RunFolder(cfg.output, cfg.overwrite, resumable=False, what="pruned model")
    run.check()
    trained = load_trained(cfg.model, cfg.max_length)
    cfg.max_length = trained.max_length
    if hasattr(trained.model, "peft_config"):
        raise DistilkitError(f"{cfg.model}: prune a plain model; merge the adapter first (distilkit merge)")
    model = trained.model
    pruning.paths_for(model, heads=bool(cfg.heads))
    before = size_summary(model)
    head_spec = pruning.parse_head_spec(cfg.heads, before["attention_heads"]) if cfg.heads else (None, None)
    opts = with_run_data(cfg, cfg.model, "importance scores and evaluation")
    data, [(eval_split, eval_rows), (imp_split, imp_rows)] = splits_rows_for(
        trained, opts, [cfg.eval_split, cfg.importance_split], as_in_training=True
    )
    torch.manual_seed(cfg.seed)

    metrics = {
        "before": {**evaluate_model(model, trained, data, eval_rows, cfg), **before},
        "evaluated_on": f"{data.name} ({eval_split}, {len(eval_rows)} examples)",
        "importance_from": f"{data.name} ({imp_split}, {min(cfg.importance_samples, len(imp_rows))} examples)",
    }
    batches = importance_batches(trained, imp_rows, cfg.importance_samples, cfg.batch_size, cfg.seed, cfg.max_length)
    metrics.update(remove_structures(model, batches, head_spec, cfg))
    masks = pruning.sparsify(model, cfg.sparsity, cfg.budget) if cfg.sparsity else None
    after = size_summary(model)
    if masks is not None:
        after.update(pruning.sparsity_report(model))
    metrics["pruned"] = {**evaluate_model(model, trained, data, eval_rows, cfg), **after}
    metrics["macs_ratio"] = after["encoder_macs_per_token_seq128"] / before["encoder_macs_per_token_seq128"]

    structural = (
        after["attention_heads"] != before["attention_heads"]
        or after["intermediate_sizes"] != before["intermediate_sizes"]
        or bool(getattr(model.config, "distilkit_pruning", None))
    )
    work = run.prepare()
    try:
        save_pruned(model, trained.tokenizer, work / "model", trained.task, structural)
        if cfg.recover != "none":
            metrics["recovery"] = {"method": cfg.recover, "training": recover(cfg, opts, work / "model", work)}
            recovered = recover_into(work, masks, trained, structural)
            metrics["recovered"] = evaluate_model(recovered, trained, data, eval_rows, cfg)
        config = {
            **(resolved or options_of(cfg)),
            **{k: getattr(opts, k) for k in ("data", "train_file", "dev_file", "test_file")},
        }
        run.write_results(metrics, config)
        prune_card(work, config, metrics, PruneConfig)
        final = run.finish()
    except BaseException as err:
        run.fail(err)
    print_summary(metrics, final)
    return final


def size_summary(model) -> dict:
    """Heads and FFN widths per layer, parameters, and the encoder's linear-layer MACs per token at length 128."""
    return {
        **pruning.shape_summary(model),
        "parameters": sum(p.numel() for p in model.parameters()),
        "encoder_macs_per_token_seq128": pruning.linear_macs_per_token(model),
    }


def remove_structures(model, batches, head_spec: tuple, cfg: PruneConfig, loss_of=pruning.task_loss) -> dict:
    """Score heads / FFN neurons on `batches` (an iterable, read only when something is to be removed) by
    `loss_of` and remove the least important; returns the removed heads (layer -> head indices) for metrics.json.
    `head_spec` is parse_head_spec's (fraction, per-layer counts)."""
    fraction, counts = head_spec
    want_heads, want_ffn = bool(cfg.heads) and bool(fraction or counts), cfg.ffn > 0
    if not (want_heads or want_ffn):
        return {}
    head_scores, ffn_scores = pruning.score_importance(model, batches, want_heads, want_ffn, loss_of)
    removed = {}
    if want_heads:
        if counts is not None:
            remove = [sorted(torch.argsort(s)[: counts.get(i, 0)].tolist()) for i, s in enumerate(head_scores)]
        else:
            remove = pruning.choose_lowest(head_scores, fraction, cfg.budget, "heads")
        pruning.remove_heads(model, remove)
        removed["removed_heads"] = {str(i): r for i, r in enumerate(remove) if r}
    if want_ffn:
        pruning.remove_neurons(model, pruning.choose_lowest(ffn_scores, cfg.ffn, cfg.budget, "neurons"))
    return removed


def recover_into(work: Path, masks, trained, structural: bool):
    """After recovery training: its model replaces work/model (unstructured masks reapplied, since training
    regrows the zeros) and its own copy in work/recovery/model goes; returns the recovered model."""
    recovered = load_trained(str(work / "recovery"))
    if masks is not None:
        pruning.reapply_masks(recovered.model, masks)  # one-shot: the zeros come back after training
    shutil.rmtree(work / "model")
    save_pruned(recovered.model, trained.tokenizer, work / "model", trained.task, structural)
    shutil.rmtree(work / "recovery" / "model")
    return recovered.model


def print_summary(metrics: dict, final: Path) -> None:
    before, pruned = metrics["before"], metrics["pruned"]
    metric = next(k for k in before if k in pruned and isinstance(before[k], float))
    show(f"heads per layer: {before['attention_heads']} → {pruned['attention_heads']}")
    show(f"FFN width per layer: {before['intermediate_sizes']} → {pruned['intermediate_sizes']}")
    if "encoder_linear_sparsity" in pruned:
        show(
            f"encoder Linear sparsity: {100 * pruned['encoder_linear_sparsity']:.1f}% (zeros save no time "
            "without sparse kernels; they compress well)"
        )
    show(
        f"parameters: {before['parameters']:,} → {pruned['parameters']:,}; encoder MACs/token at seq 128: "
        f"{100 * metrics['macs_ratio']:.1f}% of before"
    )
    line = f"{metric} on {metrics['evaluated_on']}: {before[metric]:.4f} → pruned {pruned[metric]:.4f}"
    if "recovered" in metrics:
        line += f" → after {metrics['recovery']['method']} recovery {metrics['recovered'][metric]:.4f}"
    show(line)
    show(f"written: {final}")
