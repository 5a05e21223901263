"""`distilkit distill`: teacher(s) + data + student spec + recipe → a distilled student in a run folder.

The flow: load and check teachers → data (labels from the teacher) → student → layer map and checks →
optional augmentation → tokenization → teacher sanity check → per stage: teacher cache, Distiller.train()
→ save the student alone (a plain HF folder) with metrics: student, teacher, retention and agreement.
Everything that can be refused is refused before the run folder is created.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from distilkit.config import DistillConfig
from distilkit.data.dataset import TOK, check_known_labels, finalise_labels, load_task_data
from distilkit.data.encode import collator_for, encode_rows
from distilkit.distill import capture, checks
from distilkit.distill.cache import CacheSpec, TeacherCache, build_cache, cache_key, default_cache_dir, estimate_bytes
from distilkit.distill.distiller import Distiller, LossPlan, StudentWithProjections, make_projections
from distilkit.distill.general import load_general_teacher, read_raw_text
from distilkit.distill.layer_map import build_layer_map
from distilkit.distill.recipes import RECIPES, default_relation_heads, resolve_stages
from distilkit.distill.students import build_student, is_pretrained_spec
from distilkit.errors import DistilkitError
from distilkit.evaluate.evaluator import predictions_and_labels
from distilkit.evaluate.metrics import format_table, plot_confusion_matrix, task_metrics
from distilkit.inference.loading import load_trained, run_batches
from distilkit.losses.registry import import_plugins, reads_of
from distilkit.models import check_max_length, encoder_layers, load_tokenizer, resolve_model
from distilkit.runs import RunFolder
from distilkit.training.adversarial import with_adversarial
from distilkit.training.trainer_setup import (
    EpochTimer,
    compute_metrics_fn,
    count_parameters,
    metric_choice,
    preprocess_logits,
    tensorboard_callback,
    training_arguments,
)


def _parse_weights(text: str | None, n: int) -> list[float]:
    if not text:
        return [1.0] * n
    try:
        weights = [float(x) for x in text.split(",")]
    except ValueError:
        weights = []
    if len(weights) != n or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise DistilkitError(f"--teacher-weights {text!r}: give {n} non-negative numbers, one per teacher")
    return weights


def _load_teachers(cfg: DistillConfig):
    names = [t.strip() for t in cfg.teacher.split(",") if t.strip()]
    if not names:
        raise DistilkitError("no teacher given: pass --teacher (a fine-tuned run folder or model folder)")
    if cfg.general:
        if len(names) > 1:
            raise DistilkitError("general distillation takes one teacher")
        model, tokenizer, uses_mlm, path = load_general_teacher(names[0])
        check_max_length(cfg.max_length, path)
        return [
            dataclasses.make_dataclass("T", ["path", "model", "tokenizer", "task", "labels", "regression"])(
                path, model, tokenizer, "general", [], False
            )
        ], uses_mlm
    teachers = [load_trained(n, cfg.max_length) for n in names]
    checks.check_same_labels(teachers)
    for other in teachers[1:]:
        if not checks.same_tokenizer(teachers[0].tokenizer, other.tokenizer):
            raise DistilkitError(
                f"teachers {teachers[0].path} and {other.path} use different tokenizers; "
                "multi-teacher KD needs one tokenizer"
            )
    return teachers, False


def _prepare_data(cfg: DistillConfig, teacher):
    if cfg.general:
        return read_raw_text(cfg.data or cfg.train_file or "", cfg.text_column, cfg.max_train_samples)
    data = load_task_data(
        dataclasses.replace(cfg, task=teacher.task if cfg.task == "auto" else cfg.task),
        seed=cfg.seed,
        for_training=True,
    )
    if data.task != teacher.task:
        raise DistilkitError(f"{data.name}: this is {data.task} data but the teacher is a {teacher.task} model")
    data.regression, data.labels = teacher.regression, list(teacher.labels)
    for split, rows in data.splits.items():
        finalise_labels(data.task, data.regression, rows)
        if not data.regression:
            check_known_labels(data.task, rows, data.labels, split)
    return data


def _encode(data, tokenizer, max_length: int, label2id: dict) -> dict:
    out = {}
    for split, rows in data.splits.items():
        task = "sequence-classification" if data.task == "general" else data.task
        ds, truncated = encode_rows(rows, task, tokenizer, max_length, label2id, data.regression)
        if "word_ids" in ds.column_names:
            ds = ds.remove_columns("word_ids")
        if truncated:
            print(f"truncated: {truncated} of {len(ds)} {split} examples exceed {max_length} tokens")
        out[split] = ds
    out["train"] = out["train"].add_column("example_id", list(range(len(out["train"]))))
    return out


def _caches(cfg, teachers, teacher_sets, plan: LossPlan, dims, args) -> list:
    """Build or reuse one cache per teacher; intermediate outputs only for the first and only under the cap."""
    if not cfg.cache:
        return []
    root = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    has_logits = dims["labels"] > 0
    spec = plan.cache_spec(logits=has_logits)
    lengths = np.asarray([len(x) for x in teacher_sets[0]["input_ids"]])
    sizes = estimate_bytes(spec, lengths, dims)
    total_gb = sum(sizes.values()) / 1e9
    if total_gb > cfg.cache_max_gb:
        print(
            f"teacher cache: intermediate outputs would take {total_gb:.2f} GB (> --cache-max-gb "
            f"{cfg.cache_max_gb}); caching logits only, the teacher runs live for the rest"
        )
        spec = CacheSpec(logits=has_logits)
    if not spec.names():
        return []
    caches = []
    for k, (teacher, dataset) in enumerate(zip(teachers, teacher_sets)):
        this_spec = spec if k == 0 else CacheSpec(logits=has_logits)
        folder = root / cache_key(teacher.model, dataset, this_spec)
        gb = sum(estimate_bytes(this_spec, lengths, dims).values()) / 1e9
        with args.main_process_first(desc="teacher cache"):
            if (folder / "meta.json").exists():
                print(f"teacher cache: reusing {folder}")
                caches.append(TeacherCache(folder))
            else:
                print(f"teacher cache: computing {', '.join(this_spec.names())} ({gb:.3f} GB, fp16) into {folder}")
                teacher.model.to(args.device)
                caches.append(
                    build_cache(
                        teacher.model,
                        dataset,
                        collator_for(
                            "sequence-classification" if dims["task"] == "general" else dims["task"], teacher.tokenizer
                        ),
                        this_spec,
                        folder,
                        args.per_device_eval_batch_size,
                        dims,
                    )
                )
    return caches


def _evaluate_pair(student, teacher, student_ds, teacher_ds, data, tokenizer, teacher_tokenizer, batch_size) -> dict:
    """Student and teacher metrics on one split, retention and student–teacher agreement."""
    student.eval()
    s_logits = run_batches(student, student_ds, collator_for(data.task, tokenizer), batch_size)
    t_logits = run_batches(teacher.model, teacher_ds, collator_for(data.task, teacher_tokenizer), batch_size)
    s_pred, labels = predictions_and_labels(s_logits, student_ds, data.task, data.regression)
    t_pred, _ = predictions_and_labels(t_logits, teacher_ds, data.task, data.regression)
    out = {
        "student": task_metrics(data.task, data.regression, data.labels, s_pred, labels, data.is_bio),
        "teacher": task_metrics(data.task, data.regression, data.labels, t_pred, labels, data.is_bio),
    }
    key = "mse" if data.regression else "f1" if data.is_bio else "accuracy"
    if not data.regression:
        valid = labels != -100
        out["agreement"] = float((s_pred[valid] == t_pred[valid]).mean())
        out["retention"] = out["student"][key] / max(out["teacher"][key], 1e-12)
    out["metric"] = key
    return out


def _peft_student(cfg: DistillConfig, student, task: str, logits_only: bool):
    """Wrap a pretrained student with a PEFT method (its adapter is what gets saved)."""
    from distilkit import adapters

    if cfg.general or not is_pretrained_spec(cfg.student):
        raise DistilkitError(
            "--peft in distill needs a pretrained student (--student FOLDER or hub id) on a task: an adapter must "
            "point to a base model that exists outside this run"
        )
    if cfg.peft in ("prefix", "prompt") and not logits_only:
        raise DistilkitError(f"--peft {cfg.peft} changes the attention inputs; use it with logit KD only (--recipe kd)")
    return adapters.apply(student, cfg, task)


def distill(cfg: DistillConfig, resolved: dict | None = None) -> Path:
    run = RunFolder(cfg.output, overwrite=cfg.overwrite, resume=cfg.resume)
    run.check()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    import_plugins(cfg.plugins)  # the user's own losses register themselves on import
    teachers, uses_mlm = _load_teachers(cfg)
    lead = teachers[0]
    stages = resolve_stages(cfg.recipe, cfg.alpha, cfg.losses, cfg.general)
    if uses_mlm:
        stages[-1].weights["kd"] = 1.0  # MLM-logit KD per token
    recipe = RECIPES[cfg.recipe]
    weights_all = {k for s in stages for k in s.weights}
    reads = reads_of(weights_all)
    logits_only = reads <= {"labels", "logits"}
    data = _prepare_data(cfg, lead)

    if cfg.general and is_pretrained_spec(cfg.student):
        from transformers import AutoModel

        student, how = AutoModel.from_pretrained(resolve_model(cfg.student)), f"pretrained {cfg.student}"
    else:
        student, how = build_student(cfg.student, lead.model, data.task, cfg.seed)
    tokenizer = lead.tokenizer
    if is_pretrained_spec(cfg.student):
        tokenizer = load_tokenizer(resolve_model(cfg.student))
    separate = checks.check_tokenizers(lead.tokenizer, tokenizer, cfg.separate_tokenization, logits_only, data.task)
    if separate and not cfg.cache:
        raise DistilkitError(
            "--separate-tokenization needs the teacher cache (the teacher reads its own tokens); drop --cache false"
        )
    layer_map = build_layer_map(
        cfg.layer_map or recipe.layer_map, len(encoder_layers(student)), len(encoder_layers(lead.model))
    )
    checks.check_heads(student, lead.model, "scores" in reads)
    if cfg.peft:
        student = _peft_student(cfg, student, data.task, logits_only)
    total, _ = count_parameters(student)
    teacher_total, _ = count_parameters(lead.model)
    print(
        f"teacher: {lead.path} — {teacher_total / 1e6:.2f}M parameters"
        + (f" (+{len(teachers) - 1} more)" if len(teachers) > 1 else "")
    )
    print(f"student: {how} — {total / 1e6:.2f}M parameters ({teacher_total / max(total, 1):.1f}x smaller)")
    if not logits_only:
        print(f"layer map: {layer_map.describe()}")
    print(
        "stages: " + "; ".join(f"{s.name}: " + " + ".join(f"{w:g}·{k}" for k, w in s.weights.items()) for s in stages)
    )

    if cfg.augment:
        from distilkit.distill.augment import augment_rows

        before = len(data.splits["train"])
        data.splits["train"] = augment_rows(
            data.splits["train"], data.task, lead.model, lead.tokenizer, cfg.augment, cfg.augment_p, cfg.seed
        )
        print(f"augmentation: {before} → {len(data.splits['train'])} training examples")
    label2id = {n: i for i, n in enumerate(data.labels)}
    student_sets = _encode(data, tokenizer, cfg.max_length, label2id)
    teacher_sets = _encode(data, lead.tokenizer, cfg.max_length, label2id) if separate else student_sets
    warning = None
    if not cfg.general:
        check_split = "dev" if "dev" in teacher_sets else "train"
        quality = checks.teacher_quality(lead, teacher_sets[check_split], data)  # extra columns are ignored
        warning = checks.check_teacher_trained(lead, quality, check_split, cfg.force)
        if warning:
            print(f"WARNING: {warning}")

    plan_common = dict(
        layer_map=layer_map,
        temperature=recipe.temperature if cfg.temperature is None else cfg.temperature,
        attention_probabilities=cfg.attention_probabilities,
        token_level=data.task == TOK or uses_mlm,
        regression=data.regression,
        teacher_weights=_parse_weights(cfg.teacher_weights, len(teachers)),
        relation_heads=cfg.relation_heads
        or default_relation_heads(
            student.config.hidden_size, lead.model.config.hidden_size, lead.model.config.num_attention_heads
        ),
    )
    if reads & {"scores", "qkv"}:
        capture.enable(student)
        for t in teachers:
            capture.enable(t.model)
    head_width = (student.config.hidden_size, lead.model.config.hidden_size)
    # one plan covering every stage: it sizes the projections and the cache, so all stages share one cache
    union_plan = LossPlan(weights={k: 1.0 for k in weights_all}, **plan_common)
    model = StudentWithProjections(student, make_projections(union_plan, *head_width))
    dims = {
        "task": data.task,
        "token_level": data.task == TOK or uses_mlm,
        "hidden": lead.model.config.hidden_size,
        "heads": lead.model.config.num_attention_heads,
        "labels": lead.model.config.vocab_size if uses_mlm else len(data.labels) or int(data.regression),
    }
    work = run.prepare(resolved if resolved is not None else dataclasses.asdict(cfg))
    try:
        metric, greater = metric_choice(data, cfg) if not cfg.general else ("loss", False)
        started, timings, caches = time.perf_counter(), {}, None
        for i, stage in enumerate(stages):
            plan = LossPlan(stage.weights, **plan_common)
            final = i == len(stages) - 1
            done = work / f"stage-{stage.name}.safetensors"
            if done.exists() and not final:
                from safetensors.torch import load_file

                model.load_state_dict(load_file(str(done)))
                print(f"stage {stage.name}: already done, loaded {done.name}")
                continue
            epochs = getattr(cfg, stage.epochs_option) or cfg.epochs
            lr = (cfg.intermediate_lr or cfg.lr) if stage.epochs_option == "intermediate_epochs" else cfg.lr
            stage_cfg = dataclasses.replace(cfg, epochs=epochs, lr=lr)
            has_dev = final and "dev" in student_sets and not cfg.general
            args = training_arguments(stage_cfg, work / "checkpoints" / stage.name, metric, greater, has_dev)
            args.remove_unused_columns = False  # keep example_id for the cache
            cache_started = time.perf_counter()
            if caches is None:  # built (or found) once: the union plan covers every stage
                caches = _caches(cfg, teachers, [teacher_sets["train"]] * len(teachers), union_plan, dims, args)
            else:
                for cache in caches:
                    print(f"teacher cache: reusing {cache.folder}")
            timings[stage.name] = {"cache_seconds": round(time.perf_counter() - cache_started, 2)}
            timer = EpochTimer()
            print(f"\nstage {i + 1}/{len(stages)}: {stage.name}, {epochs:g} epochs")
            trainer_class = with_adversarial(
                Distiller, cfg.adversarial, cfg.adversarial_epsilon, cfg.pgd_steps, cfg.pgd_alpha
            )
            trainer = trainer_class(
                model=model,
                args=args,
                train_dataset=student_sets["train"],
                eval_dataset=student_sets.get("dev") if has_dev else None,
                data_collator=collator_for("sequence-classification" if cfg.general else data.task, tokenizer),
                processing_class=tokenizer,
                compute_metrics=compute_metrics_fn(data) if has_dev else None,
                preprocess_logits_for_metrics=preprocess_logits(data.regression) if has_dev else None,
                callbacks=[tensorboard_callback(work / "logs" / stage.name), timer],
                plan=plan,
                teachers=[t.model for t in teachers],
                caches=caches,
            )
            checkpoint = run.last_checkpoint(work / "checkpoints" / stage.name) if cfg.resume else None
            trainer.train(resume_from_checkpoint=checkpoint)
            timings[stage.name]["epoch_seconds"] = timer.seconds
            if not final and trainer.is_world_process_zero():
                from safetensors.torch import save_file

                save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(done))
        elapsed = time.perf_counter() - started
        student = model.student
        main = trainer.is_world_process_zero()  # under accelerate launch only rank 0 writes the run folder
        if not main:
            return run.final
        if cfg.peft:  # the adapter alone, pointing to the pretrained student it was trained on
            from distilkit import adapters
            from distilkit.training.finetune import base_pointer

            adapters.save_adapter(
                student, work / "model", cfg.peft, base_pointer(cfg.student, resolve_model(cfg.student)), data.task
            )
        else:
            student.save_pretrained(str(work / "model"))
        tokenizer.save_pretrained(str(work / "model"))
        metrics = {
            "teacher": cfg.teacher,
            "student": cfg.student,
            "student_built": how,
            "recipe": cfg.recipe,
            "stages": [{"name": s.name, "weights": s.weights} for s in stages],
            "data": data.name,
            "task": data.task,
            "labels": data.labels,
            "parameters": total,
            "teacher_parameters": teacher_total,
            "layer_map": layer_map.describe(),
            "train": {"wall_seconds": round(elapsed, 1), "stages": timings, "examples": len(student_sets["train"])},
        }
        if warning:
            metrics["warning"] = warning
        for split in ("dev", "test"):
            if split in student_sets and not cfg.general:
                result = _evaluate_pair(
                    student,
                    lead,
                    student_sets[split],
                    teacher_sets[split],
                    data,
                    tokenizer,
                    lead.tokenizer,
                    cfg.eval_batch_size,
                )
                metrics[split] = result
                if not data.regression:
                    plot_confusion_matrix(
                        result["student"], work / f"confusion_matrix_{split}.png", f"student on {data.name} {split}"
                    )
        run.write_results(metrics, resolved if resolved is not None else dataclasses.asdict(cfg))
    except DistilkitError:
        run.abort()
        raise
    final_dir = run.finish()
    last = "test" if "test" in metrics else "dev" if "dev" in metrics else None
    if last:
        r = metrics[last]
        print(format_table(r["student"], title=f"\nstudent on {data.name} {last}"))
        if "retention" in r:
            print(
                f"\nteacher {r['metric']} {r['teacher'][r['metric']]:.4f}, student {r['student'][r['metric']]:.4f}: "
                f"retention {100 * r['retention']:.1f}%, agreement with teacher {100 * r['agreement']:.1f}%"
            )
    print(f"\nrun folder: {final_dir} (student model in {final_dir / 'model'})")
    return final_dir
