"""The parts `distill` is made of: teachers, data, tokenization, the teacher cache, evaluation of the pair.

command.py puts them in order (the steps of training/job.py); each part here does one thing and refuses bad
input with one line before anything is written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from distilkit.budget import disk_space_ok, human
from distilkit.config import DistillConfig
from distilkit.data.dataset import TaskData, check_known_labels, finalise_labels, load_task_data
from distilkit.data.encode import collator_for, encode_rows
from distilkit.data.unlabeled import UNLABELED, load_unlabeled
from distilkit.distillation import checks
from distilkit.distillation.cache import (
    CacheSpec,
    TeacherCache,
    build_cache,
    cache_key,
    default_cache_dir,
    estimate_bytes,
)
from distilkit.distillation.distiller import LossPlan
from distilkit.distillation.general import check_corpus, corpus_tokens, load_corpus, load_general_teacher, pack_corpus
from distilkit.distillation.students import is_pretrained_spec
from distilkit.errors import DistilkitError
from distilkit.evaluation.evaluate import predictions_and_labels
from distilkit.evaluation.intervals import compare, intervals, units_of
from distilkit.evaluation.metrics import default_metric, task_metrics
from distilkit.evaluation.pooled import prediction_record
from distilkit.inference.loading import load_trained, run_batches
from distilkit.models import check_max_length
from distilkit.training.job import process_state
from distilkit.training.trainer_setup import autocast, precision_of


def distill_fields(cfg: DistillConfig) -> dict:
    """The DistillationArguments fields of a `distill` config (the CLI's options of the same names)."""
    from distilkit.distillation.arguments import DistillationArguments
    from distilkit.training.trainer_setup import training_fields

    fields = {f.name for f in dataclasses.fields(DistillationArguments)} - training_fields()
    return {name: getattr(cfg, name) for name in sorted(fields) if hasattr(cfg, name)}


def load_teachers(cfg: DistillConfig):
    names = [t.strip() for t in cfg.teacher.split(",") if t.strip()]
    if not names:
        raise DistilkitError("no teacher given: pass --teacher (a fine-tuned run folder or model folder)")
    if cfg.general:
        if len(names) > 1:
            raise DistilkitError("general distillation takes one teacher")
        model, tokenizer, uses_mlm, path = load_general_teacher(names[0])
        cfg.max_length = check_max_length(cfg.max_length, path)
        return [
            dataclasses.make_dataclass("T", ["path", "model", "tokenizer", "task", "labels", "regression"])(
                path, model, tokenizer, "general", [], False
            )
        ], uses_mlm
    teachers = []
    for name in names:  # the first teacher sets the default length; the others must read it too
        teachers.append(load_trained(name, cfg.max_length))
        cfg.max_length = teachers[-1].max_length
    checks.check_same_labels(teachers)
    for other in teachers[1:]:
        if not checks.same_tokenizer(teachers[0].tokenizer, other.tokenizer):
            raise DistilkitError(
                f"teachers {teachers[0].path} and {other.path} use different tokenizers; "
                "multi-teacher KD needs one tokenizer"
            )
    return teachers, False


def check_general_options(cfg: DistillConfig) -> None:
    """Options that general distillation cannot use, and inputs that can be refused from a look at them (a missing
    --intermediate-from, a corpus that is empty, not UTF-8 or too big for the cache disk): before any model loads."""
    if cfg.intermediate_from and not Path(cfg.intermediate_from).exists():
        raise DistilkitError(
            f"--intermediate-from {cfg.intermediate_from}: not found; give the --output of an earlier distill run"
        )
    if cfg.general:
        if cfg.data is not None and not isinstance(cfg.data, str):
            raise DistilkitError(
                "general distillation reads a corpus from files or a save_to_disk folder: give data= as a path"
            )
        check_corpus(cfg.data or cfg.train_file or "", corpus_cache(cfg))
    if cfg.general and cfg.unlabeled:
        raise DistilkitError(
            "--unlabeled is for task distillation; general distillation reads raw text only: give it as --data"
        )
    if cfg.general and cfg.augment:
        raise DistilkitError("--augment is for task distillation; general distillation reads the corpus as it is")


def prepare_data(cfg: DistillConfig, teacher):
    if cfg.general:
        source = cfg.data or cfg.train_file or ""
        with main_process_first():  # under several processes the first writes the Arrow files, the others read them
            corpus = load_corpus(source, cfg.text_column, corpus_cache(cfg), cfg.max_train_samples, checked=True)
        name = Path(source.split(",")[0]).name if source else "corpus"
        return TaskData(name=name, task="general", regression=False, labels=[], corpus=corpus)
    data = load_task_data(
        dataclasses.replace(cfg, task=teacher.task if cfg.task == "auto" else cfg.task),
        seed=cfg.split_seed,
        for_training=True,
        fold=cfg.this_fold,
    )
    if data.task != teacher.task:
        raise DistilkitError(f"{data.name}: this is {data.task} data but the teacher is a {teacher.task} model")
    data.regression, data.labels = teacher.regression, list(teacher.labels)
    for split, rows in data.splits.items():
        data.splits[split] = rows = finalise_labels(data.task, data.regression, rows)
        if not data.regression:
            check_known_labels(data.task, rows, data.labels, split)
    if cfg.unlabeled:
        train = len(data.splits["train"])
        limit = None if cfg.unlabeled_ratio is None else max(1, round(cfg.unlabeled_ratio * train))
        rows = load_unlabeled(
            cfg.unlabeled, data.task, cfg, data.is_pair, data.labels, data.regression, limit, cfg.seed
        )
        data.splits[UNLABELED] = rows = finalise_labels(data.task, data.regression, rows)
        print(
            f"transfer set: {len(rows)} unlabeled examples from {cfg.unlabeled} next to {train} labelled ones; "
            "the teacher labels them, label losses skip them"
        )
    return data


def corpus_cache(cfg: DistillConfig) -> Path:
    """Where `datasets` writes a general-distillation corpus's Arrow files."""
    cache_dir = getattr(cfg, "cache_dir", None)  # prune reads texts too, and has no --cache-dir
    return (Path(cache_dir) if cache_dir else default_cache_dir()) / "corpus"


def main_process_first():
    """A context in which the main process runs first and the others wait (one process: a plain context)."""
    return process_state().main_process_first()


def encode_corpus(data, tokenizer, max_length: int) -> dict:
    """The general-distillation training set: the corpus packed into token blocks, with example ids."""
    with main_process_first():
        packed = pack_corpus(data.corpus, tokenizer, max_length)
    if not len(packed):
        raise DistilkitError(f"{data.name}: the corpus has no text (every row is empty or blank); give it some text")
    packed = packed.add_column("example_id", list(range(len(packed))))
    tokens = corpus_tokens(packed)
    print(f"corpus: {len(data.corpus)} texts → {len(packed)} blocks of up to {max_length} tokens ({tokens:,} tokens)")
    data.tokens = tokens
    return {"train": packed}


def encode_sets(data, tokenizer, max_length: int, label2id: dict) -> dict:
    out = {}
    for split, rows in data.splits.items():
        task = "sequence-classification" if data.task == "general" else data.task
        ds, truncated = encode_rows(rows, task, tokenizer, max_length, label2id, data.regression)
        if "word_ids" in ds.column_names:
            ds = ds.remove_columns("word_ids")
        if truncated:
            print(f"truncated: {truncated} of {len(ds)} {split} examples exceed {max_length} tokens")
        out[split] = ds
    unlabeled = out.pop(UNLABELED, None)
    if unlabeled is not None:  # one training set; `labeled` = 0 keeps the transfer set out of the label losses
        import datasets

        labelled = out["train"].add_column("labeled", [1] * len(out["train"]))
        unlabeled = unlabeled.add_column("labeled", [0] * len(unlabeled)).cast(labelled.features)
        out["train"] = datasets.concatenate_datasets([labelled, unlabeled])
    out["train"] = out["train"].add_column("example_id", list(range(len(out["train"]))))
    return out


def example_lengths(dataset) -> np.ndarray:
    """Tokens per example, read a column batch at a time (a memory-mapped corpus is never loaded whole)."""
    batches = dataset.select_columns(["input_ids"]).iter(batch_size=10_000)
    return np.fromiter((len(ids) for batch in batches for ids in batch["input_ids"]), dtype=np.int64)


def build_caches(cfg, teachers, teacher_sets, plan: LossPlan, dims, args, tokenizer, collator=None) -> list:
    """Build or reuse one cache per teacher (torch models; `teacher_sets` their tokenized training rows, padded by
    `collator`, or else by the teachers' `tokenizer`); intermediate outputs only for the first and only under the
    cap. `cfg` gives the cache options (cache, cache_dir, cache_max_gb), `args` the Trainer's (device, precision,
    eval batch size)."""
    if not cfg.cache:
        return []
    root = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    has_logits = dims["labels"] > 0
    spec = plan.cache_spec(logits=has_logits)
    lengths = example_lengths(teacher_sets[0])
    sizes = estimate_bytes(spec, lengths, dims)
    total_gb = sum(sizes.values()) / 1e9
    if total_gb > cfg.cache_max_gb or not disk_space_ok(sum(sizes.values()) * len(teachers), root):
        why = f"> --cache-max-gb {cfg.cache_max_gb}" if total_gb > cfg.cache_max_gb else "more than the disk has free"
        print(
            f"teacher cache: intermediate outputs would take {total_gb:.2f} GB ({why}); caching logits only, "
            "the teacher runs live for the rest"
        )
        spec = CacheSpec(logits=has_logits)
    logits_bytes = sum(estimate_bytes(spec, lengths, dims).values()) * len(teachers)
    if spec.names() and not disk_space_ok(logits_bytes, root):
        print(f"teacher cache: off: {root} has not the {human(logits_bytes)} it needs free; the teacher runs live")
        return []
    if not spec.names():
        return []
    caches = []
    for k, (teacher, dataset) in enumerate(zip(teachers, teacher_sets)):
        this_spec = spec if k == 0 else CacheSpec(logits=has_logits)
        precision = precision_of(args)
        folder = root / cache_key(teacher, dataset, this_spec, precision)
        gb = sum(estimate_bytes(this_spec, lengths, dims).values()) / 1e9
        with args.main_process_first(desc="teacher cache"):
            if (folder / "meta.json").exists():
                print(f"teacher cache: reusing {folder}")
                caches.append(TeacherCache(folder))
            else:
                print(
                    f"teacher cache: computing {', '.join(this_spec.names())} with the teacher in {precision} "
                    f"({gb:.3f} GB, stored as fp16) into {folder}"
                )
                teacher.to(args.device)
                with autocast(args):  # the teacher runs in the student's precision, as it would live
                    caches.append(
                        build_cache(
                            teacher,
                            dataset,
                            collator
                            or collator_for(
                                "sequence-classification" if dims["task"] in ("general", "embedding") else dims["task"],
                                tokenizer,
                            ),
                            this_spec,
                            folder,
                            args.per_device_eval_batch_size,
                            dims,
                        )
                    )
    return caches


def evaluate_pair(
    student, teacher, student_ds, teacher_ds, data, tokenizer, teacher_tokenizer, batch_size, records=None, groups=None
) -> dict:
    """Student and teacher metrics on one split, retention and student–teacher agreement; `records`, a dict, gets
    both models' predictions (evaluation/pooled.py's records, for pooling folds); `groups` (one per example) makes
    the intervals and the paired comparison resample whole groups."""
    student.eval()
    s_logits = run_batches(student, student_ds, collator_for(data.task, tokenizer), batch_size)
    t_logits = run_batches(teacher.model, teacher_ds, collator_for(data.task, teacher_tokenizer), batch_size)
    s_pred, labels = predictions_and_labels(s_logits, student_ds, data.task, data.regression)
    t_pred, _ = predictions_and_labels(t_logits, teacher_ds, data.task, data.regression)
    out: dict = {}
    units = {}
    for name, pred in {"student": s_pred, "teacher": t_pred}.items():
        out[name] = task_metrics(data.task, data.regression, data.labels, pred, labels, data.is_bio)
        units[name] = units_of(data.task, data.regression, data.labels, pred, labels, data.is_bio, groups)
        out[name]["intervals"] = intervals(units[name])
        if records is not None:
            records[name] = prediction_record(data.task, data.regression, data.labels, pred, labels, groups)
    key, _ = default_metric(data.task, data.regression, data.is_bio)
    # student − teacher on the same examples: paired bootstrap interval, McNemar's exact test for accuracy
    out["paired"] = compare(units["teacher"], units["student"], key)
    if not data.regression:
        valid = labels != -100
        out["agreement"] = float((s_pred[valid] == t_pred[valid]).mean())
        out["retention"] = out["student"][key] / max(out["teacher"][key], 1e-12)
    out["metric"] = key
    return out


def peft_student(cfg: DistillConfig, student, task: str, logits_only: bool):
    """Wrap a pretrained student with a PEFT method (its adapter is what gets saved)."""
    from distilkit import adapters

    if cfg.general or not is_pretrained_spec(cfg.student):
        raise DistilkitError(
            "--peft in distill needs a pretrained student (--student FOLDER or hub id) on a task: an adapter must "
            "point to a base model that exists outside this run"
        )
    if cfg.peft in ("prefix", "prompt") and not logits_only:
        raise DistilkitError(f"--peft {cfg.peft} changes the attention inputs; use it with logit KD only (--method kd)")
    return adapters.apply(student, cfg, task)
