"""Cards of the folders that convert a model without training it: `merge` (an adapter folded into its base),
`export` (ONNX) and `quantize` (int8). Their results are their source's (merge, export: the same outputs, checked by
parity) or the ones quantize measured; the chain of parents comes from the source's card."""

from __future__ import annotations

import shlex
from pathlib import Path

from distilkit.hub import usage
from distilkit.hub.card_kinds import (
    LIMITS,
    SPLITS,
    evaluated_split,
    guarded,
    labels_of_folder,
    resolved_folder,
    task_of_folder,
)
from distilkit.hub.cards import CardFacts, Results, hub_dataset_id, human_bytes, read_source, shown, write_card


def carried_results(source, note: str) -> Results | None:
    """A converted model's results: its source's card's, which the conversion keeps (checked by parity)."""
    found = source.eval_results if source is not None else []
    if not found:
        return None
    first = found[0]
    metrics = {r.metric_type: r.metric_value for r in found if r.dataset_split == first.dataset_split}
    table = [["metric", "value"]] + [[k, f"{v:.4f}"] for k, v in metrics.items()]
    dataset_id = first.dataset_type if first.dataset_type != first.dataset_name else None
    return Results(first.dataset_split or "test", first.dataset_name, metrics, table, [note], dataset_id)


@guarded
def merge_card(work: Path, model: str, meta: dict) -> None:
    """The card of `merge`'s folder: the adapter folded into its base; results carried over from the adapter's."""
    source = read_source(model, resolved_folder(model))
    base = read_source(meta.get("base", ""), None)
    source.hub_id = source.hub_id or base.hub_id
    write_card(
        CardFacts(
            folder=work,
            name=output_name(work),
            summary=f"The {meta.get('method')} adapter `{source.shown}` merged into its base model by distilkit.",
            task=meta.get("task", ""),
            source=source,
            made=[
                f"Command: `distilkit merge --model {shlex.quote(shown(model))}`",
                f"Base model: `{shown(meta.get('base', '?'))}`; adapter method `{meta.get('method')}`, folded into "
                "the weights (same predictions, no adapter code at run time)",
            ],
            usage=usage.transformers_usage("NAME", meta.get("task", "")),
            limits=LIMITS,
            labels=labels_of_folder(work),
            tags=["merged", str(meta.get("method"))],
            results=carried_results(source, "scores of the adapter before merging (merging keeps its outputs)"),
        )
    )


@guarded
def export_card(work: Path, model: str, meta: dict) -> None:
    """The card of an ONNX folder: the graph, its fusions and parity; results carried over from the source."""
    source = read_source(model, resolved_folder(model))
    parity = meta.get("parity", {})
    fused = ", ".join(f"{k} {v}" for k, v in (meta.get("fused_operators") or {}).items()) or "none"
    diff = parity.get("max_abs_logit_diff_optimized", parity.get("max_abs_logit_diff", float("nan")))
    write_card(
        CardFacts(
            folder=work,
            name=output_name(work),
            summary=f"`{source.shown}` exported to ONNX by distilkit: runs with ONNX Runtime, without torch.",
            task=meta.get("task", ""),
            source=source,
            made=[
                f"Command: `distilkit export --model {shlex.quote(shown(model))}`",
                f"ONNX opset {meta.get('opset')}, dynamic batch and sequence axes; ONNX Runtime fusions: {fused}",
                f"Parity with PyTorch on {parity.get('examples', '?')} examples of {parity.get('inputs', '?')}: "
                f"max |logit difference| {diff:.1e}",
            ],
            usage=usage.onnx_usage("NAME", meta.get("task", "")),
            limits=LIMITS + ["The graph is fp32 for CPU inference; its fused operators need ONNX Runtime."],
            labels=list(meta.get("labels") or []),
            tags=["onnx"],
            library="onnx",
            results=carried_results(source, f"scores of `{source.shown}`; the ONNX graph gives the same logits"),
        )
    )


def output_name(work: Path) -> str:
    """The output's name from its partial folder (`.name.partial`)."""
    return work.name.removeprefix(".").removesuffix(".partial")


@guarded
def quantize_card(work: Path, model: str, report: dict) -> None:
    """The card of an int8 folder: the method, what stayed fp32, and the accuracy change measured by quantize."""
    source = read_source(model, resolved_folder(model))
    settings = report.get("quantization", {})
    method = settings.get("method", "?")
    torchao = method == "torchao"
    task = task_of_folder(work)
    split, count = evaluated_split(report.get("evaluated_on", ""))
    metric = report.get("metric", "accuracy")
    sizes = report.get("size_bytes", {})
    made = [
        f"Command: `distilkit quantize --model {shlex.quote(shown(model))} --method {method}`",
        "int8: " + ", ".join(f"{k} {v}" for k, v in settings.items() if k not in ("method", "kept_fp32")),
        f"Size: {human_bytes(sizes.get('fp32', 0))} fp32 → {human_bytes(sizes.get('int8', 0))} int8",
    ]
    if settings.get("kept_fp32"):
        made.append(f"{len(settings['kept_fp32'])} graph nodes kept fp32 (no int8 kernel, or index arithmetic)")
    table = [["metric", "fp32", "int8", "change"]]
    table.append(
        [metric, f"{report.get('fp32', 0):.4f}", f"{report.get('int8', 0):.4f}", f"{report.get('change', 0):+.4f}"]
    )
    notes = [
        f"{count} examples",
        f"same prediction as fp32 on {100 * report.get('agreement', 0):.1f}%; max |logit difference| "
        f"{report.get('max_abs_logit_diff', float('nan')):.4f}",
    ]
    dataset = report.get("evaluated_on", "?").rsplit(" (", 1)[0]
    write_card(
        CardFacts(
            folder=work,
            name=output_name(work),
            summary=f"`{source.shown}` quantized to int8 ({method}) by distilkit.",
            task=task,
            source=source,
            made=made,
            usage=usage.transformers_usage("NAME", task, needs="torchao")
            if torchao
            else usage.onnx_usage("NAME", task),
            limits=LIMITS
            + [f"int8 changes the scores a little: measured on the {split} split only (see Results); check yours."],
            labels=labels_of_folder(work),
            tags=["int8"] + ([] if torchao else ["onnx"]),
            library="transformers" if torchao else "onnx",
            datasets=[hub_dataset_id(dataset)] if hub_dataset_id(dataset) else [],
            results=Results(SPLITS.get(split, split), dataset, {metric: report.get("int8")}, table, notes),
        )
    )


@guarded
def embedding_onnx_card(work: Path, model: str, meta: dict) -> None:
    """The card of an exported (and maybe int8) embedding folder: its outputs, parity or int8 cosines, sizes."""
    source = read_source(model, resolved_folder(model))
    parity, settings = meta.get("parity", {}), meta.get("quantization")
    if settings:
        command = f"distilkit quantize --model {shlex.quote(shown(model))} --method {settings.get('method')}"
        texts, mean = parity.get("texts"), parity.get("mean", 0)
        check = f"cosine to the fp32 graph's embeddings on {texts} texts: mean {mean:.4f}"
    else:
        command = f"distilkit export --model {shlex.quote(shown(model))}"
        check = f"min cosine to PyTorch's embeddings on {parity.get('texts')} texts: {parity.get('min_cosine', 0):.6f}"
    write_card(
        CardFacts(
            folder=work,
            name=output_name(work),
            summary=f"`{source.shown}` as an ONNX{' int8' if settings else ''} sentence-embedding model, by distilkit.",
            task="embedding",
            source=source,
            made=[
                f"Command: `{command}`",
                f"Outputs `last_hidden_state` and `sentence_embedding` ({meta.get('pooling')} pooling"
                + (", normalised" if meta.get("normalize") else "")
                + f", {meta.get('dimensions')} dimensions, inside the graph)",
                f"{check}; model.onnx {human_bytes(meta.get('size_bytes', 0))}",
            ],
            usage=usage.onnx_embedding_usage("NAME"),
            limits=LIMITS[:1],
            tags=["onnx", "sentence-transformers", "sentence-similarity"] + (["int8"] if settings else []),
            library="sentence-transformers",
        )
    )
