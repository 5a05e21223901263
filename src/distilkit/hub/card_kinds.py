"""One card function per kind of model folder distilkit writes; each fills a `CardFacts` for cards.write_card.

Each command calls its function inside its partial output folder, after the model and its results are written and
before the folder is renamed into place, so a finished folder always has its card: `finetune_card` and
`distill_card` (through training/job.py) and `prune_card` here; `merge_card`, `export_card` and `quantize_card` in
card_exports.py. The helpers here (the command line, the scores, the split) serve both modules.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
import shlex
from pathlib import Path

from distilkit.hub import usage
from distilkit.hub.cards import (
    CardFacts,
    Results,
    hub_dataset_id,
    read_source,
    shown,
    write_card,
)

# Options a card's command line leaves out: where things go and how the run was carried out, not what it made.
QUIET = {"output", "overwrite", "resume", "threads", "logging_steps", "eval_batch_size", "cache", "cache_dir"}
QUIET |= {"cache_max_gb", "force", "config", "keep_data_sample", "plugins"}
# Scores that go into model-index, in this order, where a metrics dict has them.
SCORES = ("accuracy", "f1", "macro_f1", "weighted_f1", "mse", "mae", "pearson", "spearman")
SPLITS = {"test": "test", "dev": "validation"}
PEFT_LIBRARY = ("lora", "prefix", "prompt", "ia3")  # adapters saved in the peft library's format
TASK_WORDS = {
    "sequence-classification": "text classification",
    "token-classification": "token classification",
    "general": "general-purpose encoder (no task head)",
    "embedding": "sentence-embedding",
}
LIMITS = [
    "Trained and scored on the data named above only: expect lower scores on text of another domain, period or "
    "language, and check it on your own data (`distilkit evaluate`) before relying on it.",
    "It predicts only the labels listed above, and reads at most the maximum length it was trained with "
    "(longer texts are truncated).",
    "Scores on small evaluation sets are uncertain by several points; the examples counts say how small.",
]


def guarded(write):
    """A card that cannot be written is a warning, not the loss of the model it describes (maybe hours of
    training); a full disk still fails the command, and with DISTILKIT_TRACEBACK set (the tests) so does any error."""

    @functools.wraps(write)
    def wrapper(*args, **kwargs) -> None:
        from distilkit.files import write_failure

        try:
            write(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - see above
            if write_failure(err) or os.environ.get("DISTILKIT_TRACEBACK", "").strip() not in ("", "0"):
                raise
            print(f"warning: no model card written ({type(err).__name__}: {err}); the model is complete without it")

    return wrapper


def command_line(command: str, cls: type, config: dict) -> str:
    """The command that made the model: the options that differ from their defaults, paths as cards show them."""
    parts = [f"distilkit {command}"]
    first = ("model", "teacher", "student", "continue_from", "data", "method")  # what it was made of, first
    for f in sorted(dataclasses.fields(cls), key=lambda f: first.index(f.name) if f.name in first else len(first)):
        value = config.get(f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.name in QUIET or value is None or value == default:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            text = json.dumps(value)
        else:
            text = shown(value)
        parts.append(f"--{f.name.replace('_', '-')} {shlex.quote(text)}")
    return "`" + " ".join(parts) + "`"


def scores(metrics: dict) -> dict[str, float]:
    """The model-index scores of a metrics dict: finite numbers only."""
    return {
        k: float(metrics[k])
        for k in SCORES
        if isinstance(metrics.get(k), (int, float)) and math.isfinite(metrics[k]) and not isinstance(metrics[k], bool)
    }


def last_split(metrics: dict) -> str | None:
    """The split a card reports: test when the run had one, else dev."""
    return next((s for s in ("test", "dev") if isinstance(metrics.get(s), dict)), None)


def data_of(config: dict) -> tuple[str, str | None]:
    """The training data as a card names it, and its Hub dataset id when it is one."""
    data = config.get("data") or config.get("train_file") or "the given data"
    return shown(data), hub_dataset_id(config.get("data"))


def plain_results(metrics: dict, split: str, config: dict, examples: object = None) -> Results:
    """One model's scores on one split: a table of the scores, and its number of examples."""
    found = scores(metrics)
    dataset, dataset_id = data_of(config)
    table = [["metric", "value"]] + [[k, f"{v:.4f}"] for k, v in found.items()]
    count = examples if examples is not None else metrics.get("examples")
    notes = [f"{count} examples"] if count else []
    return Results(SPLITS.get(split, split), dataset, found, table, notes, dataset_id)


def resolved_folder(name: str) -> str | None:
    from distilkit.models import resolve_model

    try:
        return resolve_model(name)
    except Exception:  # noqa: BLE001 - a source that cannot be found again only makes the card shorter
        return None


@guarded
def finetune_card(work: Path, config: dict, metrics: dict) -> None:
    """The card of `finetune`'s model/: fine-tuned from --model (or the run of --continue-from)."""
    from distilkit.config import FinetuneConfig

    given = config.get("continue_from") or config.get("model") or ""
    source = read_source(given, resolved_folder(given))
    task, peft = metrics.get("task", ""), metrics.get("peft")
    data, dataset_id = data_of(config)
    made = [f"Command: {command_line('finetune', FinetuneConfig, config)}"]
    made.append(
        f"Fine-tuned from `{source.shown}` on {data} ({metrics.get('train', {}).get('examples', '?')} examples)"
    )
    if peft:
        made.append(f"Parameter-efficient: `{peft}` ({metrics.get('trainable_parameters', 0):,} trainable parameters)")
    continual = metrics.get("continual")
    if continual:
        made.append(continual_line(continual))
    made += repeats_line(metrics)
    split = last_split(metrics)
    results = plain_results(metrics[split], split, config) if split else None
    if results and continual and continual.get("old_task"):
        old = continual["old_task"]
        results.notes.append(f"old task accuracy {old['before']:.4f} before, {old['after']:.4f} after")
    what = f"{peft} adapter" if peft else "model"
    write_card(
        CardFacts(
            folder=work / "model",
            name=Path(str(config.get("output", work.name))).name,
            summary=f"A {TASK_WORDS.get(task, task)} {what} fine-tuned from `{source.shown}` on {data} with distilkit.",
            task=task,
            source=source,
            made=made,
            usage=usage.adapter_usage("NAME", peft) if peft else usage.transformers_usage("NAME", task),
            limits=LIMITS,
            labels=list(metrics.get("labels") or []),
            tags=[peft] if peft else [],
            library="peft" if peft in PEFT_LIBRARY else "transformers",
            datasets=[dataset_id] if dataset_id else [],
            results=results,
        )
    )


def repeats_line(metrics: dict) -> list[str]:
    """What --seeds or --folds made: how many runs, which one this model is, and what the scores below are."""
    if "seeds" in metrics:
        b = metrics["seeds"]
        mean, sd = b["mean"].get("test"), b["sd"].get("test")
        spread = f"; test {b['metric']} over the seeds {mean:.4f} ± {sd:.4f} (mean ± sd)" if mean is not None else ""
        return [f"Seeds: {len(b['runs'])} runs; this model is {b['chosen']}, chosen by {b['chosen_by']}{spread}"]
    if "folds" in metrics:
        b = metrics["folds"]
        return [
            f"Cross-validation: {b['k']} folds; the test scores below are pooled over the folds' {b['examples']} "
            f"predictions (each example predicted by the fold model that did not train on it); this model is "
            f"{b['chosen']}, chosen by {b['chosen_by']}"
        ]
    return []


def continual_line(continual: dict) -> str:
    parts = [f"Continual learning: preserve `{continual.get('preserve') or 'none'}`"]
    parts.append(f"replay {continual.get('replay', 0)} old examples")
    if continual.get("old_task"):
        parts.append(f"forgetting {continual['old_task']['forgetting']:+.4f} (old-task accuracy before − after)")
    return ", ".join(parts)


def distill_made(config: dict, metrics: dict, teachers: list[str]) -> list[str]:
    """ "How it was made" of a student: the command, method and losses, teacher(s), student, layer map, data."""
    from distilkit.config import DistillConfig

    stages = metrics.get("stages", [])
    losses = "; ".join(f"{s['name']}: " + " + ".join(f"{w:g}·{k}" for k, w in s["weights"].items()) for s in stages)
    names = ", ".join(f"`{shown(t)}`" for t in teachers)
    made = [
        f"Command: {command_line('distill', DistillConfig, config)}",
        f"Knowledge distillation, method `{metrics.get('method')}`; losses per stage: {losses}",
        f"Teacher: {names} ({metrics.get('teacher_parameters', 0):,} parameters)",
        f"Student: {metrics.get('student_built')} ({metrics.get('parameters', 0):,} parameters)",
        f"Layer map: {metrics.get('layer_map')}",
        f"Data: {data_of(config)[0]} ({metrics.get('train', {}).get('examples', '?')} training examples)",
    ]
    settings = {"temperature": "temperature", "alpha": "label-loss weight α", "augment": "augmented copies per example"}
    made += [f"{what}: {config[key]}" for key, what in settings.items() if config.get(key)]
    return made + repeats_line(metrics)


@guarded
def distill_card(work: Path, config: dict, metrics: dict) -> None:
    """The card of `distill`'s student: its teacher(s), method, losses and layer map, and its retention."""
    teachers = [t.strip() for t in str(config.get("teacher") or "").split(",") if t.strip()] or ["?"]
    source = read_source(teachers[0], resolved_folder(teachers[0]))
    task = "general" if config.get("general") else metrics.get("task", "")
    data, dataset_id = data_of(config)
    split = last_split(metrics)
    peft = config.get("peft")
    write_card(
        CardFacts(
            folder=work / "model",
            name=Path(str(config.get("output", work.name))).name,
            summary=f"A {TASK_WORDS.get(task, task)} student distilled from `{source.shown}` on {data} with distilkit.",
            task=task,
            source=source,
            made=distill_made(config, metrics, teachers),
            usage=usage.adapter_usage("NAME", peft) if peft else usage.transformers_usage("NAME", task),
            limits=LIMITS + ["A student imitates its teacher: it inherits the teacher's errors and biases."],
            labels=list(metrics.get("labels") or []) if task != "general" else [],
            tags=["knowledge-distillation"] + ([peft] if peft else []),
            library="peft" if peft in PEFT_LIBRARY else "transformers",
            datasets=[dataset_id] if dataset_id else [],
            results=distill_results(metrics[split], split, config) if split else None,
        )
    )


def distill_results(pair: dict, split: str, config: dict) -> Results:
    """The student's scores beside the teacher's, with retention and agreement as distilkit computed them."""
    student, teacher = scores(pair.get("student", {})), scores(pair.get("teacher", {}))
    dataset, dataset_id = data_of(config)
    table = [["metric", "student", "teacher"]] + [
        [k, f"{v:.4f}", f"{teacher[k]:.4f}" if k in teacher else "–"] for k, v in student.items()
    ]
    notes = [f"{pair.get('student', {}).get('examples', '?')} examples"]
    if "retention" in pair:
        notes.append(f"retention: {100 * pair['retention']:.1f}% of the teacher's {pair.get('metric')}")
    if "agreement" in pair:
        notes.append(f"agreement with the teacher: {100 * pair['agreement']:.1f}% of predictions")
    return Results(SPLITS.get(split, split), dataset, student, table, notes, dataset_id)


@guarded
def prune_card(work: Path, config: dict, metrics: dict, options: type) -> None:
    """The card of `prune`'s model/: what was removed, the scores before and after (and after recovery). `options`
    is prune's config class (compress/ comes after hub/), whose defaults the command line leaves out."""
    source = read_source(config.get("model", ""), resolved_folder(config.get("model", "")))
    before, pruned = metrics.get("before", {}), metrics.get("pruned", {})
    made = [
        f"Command: {command_line('prune', options, config)}",
        f"Attention heads per layer: {before.get('attention_heads')} → {pruned.get('attention_heads')}",
        f"FFN size per layer: {before.get('intermediate_sizes')} → {pruned.get('intermediate_sizes')}",
        f"Parameters: {before.get('parameters', 0):,} → {pruned.get('parameters', 0):,}; encoder MACs per token "
        f"{100 * metrics.get('macs_ratio', 1):.1f}% of before",
        f"Importance scored on {metrics.get('importance_from', '?')}",
    ]
    if "encoder_linear_sparsity" in pruned:
        made.append(f"Unstructured: {100 * pruned['encoder_linear_sparsity']:.1f}% of encoder Linear weights zeroed")
    if "cosine_to_unpruned" in pruned:  # an embedding model: measured against itself unpruned
        made.append(
            f"Against the unpruned model on {metrics.get('evaluated_on', '?')}: mean cosine of the vectors "
            f"{pruned['cosine_to_unpruned']:.4f}, pairwise similarities ranked alike with Spearman "
            f"{pruned['similarity_spearman']:.4f}"
        )
    if "recovery" in metrics:
        made.append(f"Recovery training afterwards: {metrics['recovery']['method']}")
    final = metrics.get("recovered", pruned)
    split, count = evaluated_split(metrics.get("evaluated_on", ""))
    found = scores(final)
    table = [["metric", "before", "pruned"] + (["recovered"] if "recovered" in metrics else [])]
    for k in found:
        row = [k, f"{before.get(k, float('nan')):.4f}", f"{pruned.get(k, float('nan')):.4f}"]
        table.append(row + ([f"{metrics['recovered'][k]:.4f}"] if "recovered" in metrics else []))
    dataset, dataset_id = data_of(config)
    folder = work / "model"
    remote, task = (folder / "modeling_distilkit_pruned.py").is_file(), task_of_folder(folder)
    write_card(
        CardFacts(
            folder=folder,
            name=Path(str(config.get("output", work.name))).name,
            summary=f"`{source.shown}` with attention heads, FFN neurons and/or weights pruned by distilkit.",
            task=task,
            source=source,
            made=made,
            usage=(
                usage.sentence_transformers_usage("NAME", remote_code=remote)
                if task == "embedding"
                else usage.transformers_usage("NAME", task, remote_code=remote)
            ),
            limits=LIMITS + ["Pruning removes what the scored examples needed least; other text may need it more."],
            labels=[] if task == "embedding" else labels_of_folder(folder),
            tags=["pruned", *(["sentence-transformers", "sentence-similarity"] if task == "embedding" else [])],
            datasets=[dataset_id] if dataset_id else [],
            results=Results(SPLITS.get(split, split), dataset, found, table, [f"{count} examples"], dataset_id),
        )
    )


def evaluated_split(text: str) -> tuple[str, str]:
    """("test", "24") from metrics' "topics.csv (test, 24 examples)"."""
    m = re.search(r"\((\w+), (\d+) examples\)\s*$", text)
    return (m.group(1), m.group(2)) if m else ("test", "?")


def task_of_folder(folder: Path) -> str:
    """The task of a model folder, from its config's architecture (or distilkit's metadata files)."""
    if (folder / "modules.json").is_file():
        return "embedding"
    for meta in ("distilkit_onnx.json", "distilkit_adapter.json"):
        if (folder / meta).is_file():
            return json.loads((folder / meta).read_text()).get("task", "")
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    arch = (config.get("architectures") or [""])[0]
    return "token-classification" if "TokenClassification" in arch else "sequence-classification"


def labels_of_folder(folder: Path) -> list[str]:
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    id2label = config.get("id2label") or {}
    return [id2label[k] for k in sorted(id2label, key=int)]


@guarded
def embedding_card(work: Path, config: dict, metrics: dict) -> None:
    """The card of an embedding student (`distill --task embedding`): a sentence-transformers folder."""
    source = read_source(str(config.get("teacher") or "?"), resolved_folder(str(config.get("teacher") or "")))
    data, dataset_id = data_of(config)
    made = distill_made(config, metrics, [str(config.get("teacher"))])
    made.append(
        f"Embeddings: {metrics.get('pooling')} pooling, {metrics.get('dimensions')} dimensions"
        + (", normalised" if metrics.get("normalize") else "")
    )
    dev = metrics.get("dev")
    if dev:
        made.append(
            f"On {dev['texts']} held-out texts its pairwise cosine similarities rank as the teacher's with Spearman "
            f"{dev['similarity_spearman']:.4f}"
        )
    write_card(
        CardFacts(
            folder=work / "model",
            name=Path(str(config.get("output", work.name))).name,
            summary=f"A sentence-embedding student distilled from `{source.shown}` on {data} with distilkit.",
            task="embedding",
            source=source,
            made=made,
            usage=usage.sentence_transformers_usage("NAME"),
            limits=LIMITS[:1] + ["A student imitates its teacher: it inherits the teacher's errors and biases."],
            tags=["knowledge-distillation", "sentence-transformers", "sentence-similarity"],
            library="sentence-transformers",
            datasets=[dataset_id] if dataset_id else [],
        )
    )
