"""`distilkit distill`: teacher(s) + data + student spec + method → a distilled student in a run folder.

`distill` fills in the steps of the training skeleton (training/job.py): prepare (teachers → data, labels from
the teacher → student → the plan: stages, layer map, projections (distillation/planning.py) → augmentation →
tokenization → teacher sanity check), train (a DistillationTrainer, distillation/trainer.py, stage by stage, each
stage's weights kept for --resume and --intermediate-from), save the student alone (a plain HF folder), and
results (student, teacher, retention and agreement). Everything that can be refused is refused in prepare,
before the run folder is created. The parts live in distillation/setup.py.
"""

from __future__ import annotations

import time
from pathlib import Path

from distilkit.config import DistillConfig, options_of
from distilkit.console import show
from distilkit.data.dataset import groups_of
from distilkit.data.encode import collator_for
from distilkit.data.unlabeled import UNLABELED
from distilkit.distillation import checks, reuse
from distilkit.distillation.arguments import DistillationArguments
from distilkit.distillation.distiller import StudentWithProjections
from distilkit.distillation.methods import describe_stages, resolve_stages
from distilkit.distillation.planning import plan_distillation
from distilkit.distillation.setup import (
    check_general_options,
    distill_fields,
    encode_corpus,
    encode_sets,
    evaluate_pair,
    load_teachers,
    peft_student,
    prepare_data,
)
from distilkit.distillation.students import build_student, copied_layers, is_pretrained_spec
from distilkit.distillation.trainer import DistillationTrainer
from distilkit.errors import DistilkitError
from distilkit.evaluation.intervals import describe
from distilkit.evaluation.metrics import format_table, plot_confusion_matrix, scalar_metrics
from distilkit.evaluation.pooled import write_predictions
from distilkit.losses.registry import import_plugins, reads_of
from distilkit.models import load_tokenizer, resolve_model
from distilkit.models.families import layer_count
from distilkit.training.guard import check_finite_weights
from distilkit.training.job import TrainingJob
from distilkit.training.repeats import run_repeated
from distilkit.training.tracking import prefixed, save_trainer_state, use_trackers, write_trainer_files
from distilkit.training.trainer_setup import (
    EpochTimer,
    compute_metrics_fn,
    count_parameters,
    metric_choice,
    preprocess_logits,
    training_arguments,
)


def distill(cfg: DistillConfig, resolved: dict | None = None) -> Path:
    """Distil `cfg.teacher` into `cfg.student` on `cfg.data`; returns the finished run folder."""
    if cfg.task == "embedding":
        from distilkit.distillation.embedding import EmbeddingDistillJob

        return run_repeated(EmbeddingDistillJob, cfg, resolved)
    return run_repeated(DistillJob, cfg, resolved)


class DistillJob(TrainingJob):
    """`distill` as the steps of training/job.py."""

    def __init__(self, cfg: DistillConfig):
        self.cfg = cfg
        self.given = options_of(cfg)  # as given: prepare fills in defaults that depend on the models

    # ---- prepare: everything that can be refused, before the run folder exists ----

    def prepare(self) -> None:
        from transformers import set_seed

        cfg = self.cfg
        check_general_options(cfg)
        # --seed governs every random draw from here on: the student's new task head, the learned projections,
        # dropout. Without it they came from whatever the process had drawn before (another job in a benchmark).
        set_seed(cfg.seed)
        import_plugins(cfg.plugins)  # the user's own losses register themselves on import
        self.teachers, self.uses_mlm = load_teachers(cfg)
        self.lead = self.teachers[0]
        stages = resolve_stages(cfg.method, cfg.alpha, cfg.losses, cfg.general)  # bad weights: refused now
        self.logits_only = reads_of({k for stage in stages for k in stage.weights}) <= {"labels", "logits"}
        self.data = prepare_data(cfg, self.lead)
        if cfg.augment:
            self.check_augmentation_fits()
        self.build_student()
        self.encode()
        self.reused = {}
        if cfg.intermediate_from:  # refused here, before the run folder exists, if it is not an exact reuse
            self.reused = reuse.stage_files(cfg.intermediate_from, self.given, self.stages)
            reuse.check_fits(self.reused, StudentWithProjections(self.student, self.distillation.projections))

    @property
    def stages(self):
        return self.distillation.stages

    def build_student(self) -> None:
        """The student, its tokenizer and layer map, checked against the teacher; prints both sizes."""
        cfg, lead, data = self.cfg, self.lead, self.data
        if cfg.general and is_pretrained_spec(cfg.student):
            from transformers import AutoModel

            student, how = AutoModel.from_pretrained(resolve_model(cfg.student)), f"pretrained {cfg.student}"
        else:
            student, how = build_student(cfg.student, lead.model, data.task, cfg.seed)
        tokenizer = load_tokenizer(resolve_model(cfg.student)) if is_pretrained_spec(cfg.student) else lead.tokenizer
        self.separate = checks.check_tokenizers(
            lead.tokenizer, tokenizer, cfg.separate_tokenization, self.logits_only, data.task
        )
        if self.separate and not cfg.cache:
            raise DistilkitError(
                "--separate-tokenization needs the teacher cache (the teacher reads its own tokens); drop --cache false"
            )
        copied = copied_layers(cfg.student, layer_count(lead.model))  # None for size specs and pretrained students
        if cfg.peft:
            student = peft_student(cfg, student, data.task, self.logits_only)
        self.student, self.how, self.tokenizer = student, how, tokenizer
        # the stages, layer map, projections and capture: what DistillationTrainer would plan, planned now to be shown
        self.distillation = plan_distillation(student, [t.model for t in self.teachers], cfg, copied)
        self.total, _ = count_parameters(student)
        self.teacher_total, _ = count_parameters(lead.model)
        more = f" (+{len(self.teachers) - 1} more)" if len(self.teachers) > 1 else ""
        print(f"teacher: {lead.path} — {self.teacher_total / 1e6:.2f}M parameters" + more)
        smaller = self.teacher_total / max(self.total, 1)
        print(f"student: {how} — {self.total / 1e6:.2f}M parameters ({smaller:.1f}x smaller)")
        plan = self.distillation
        if not self.logits_only:
            print(f"layer map: {plan.layer_map.describe()}")
            scale = "relative (÷ teacher mean square)" if plan.normalize else "raw"
            print(f"MSE layer losses: {scale}; --normalize-losses true|false to choose")
            if "attention_mse" in plan.weights_all:
                kind = "softmax probabilities (raw MSE)" if plan.probabilities else "pre-softmax scores"
                print(f"attention_mse compares {kind}; --attention-probabilities true|false to choose")
        print("stages: " + describe_stages(self.stages))

    def encode(self) -> None:
        """Check the teacher is trained on the data, then augment (optionally) and tokenize it."""
        cfg, lead, data = self.cfg, self.lead, self.data
        self.unlabeled_count = len(data.splits.get(UNLABELED, []))
        if cfg.general:
            self.student_sets = self.teacher_sets = encode_corpus(data, self.tokenizer, cfg.max_length)
            self.warning = None
            return
        self.check_teacher()
        if cfg.augment:
            from distilkit.distillation.augment import load_augment_model
            from distilkit.distillation.augmentation import augment_rows

            model, tokenizer, mlm = lead.model, lead.tokenizer, None
            if cfg.augment_model:
                model, tokenizer, mlm = load_augment_model(cfg.augment_model)
            print(
                "augmentation candidates: "
                + (f"masked-LM predictions of {cfg.augment_model}" if mlm is not None else "embedding neighbours of ")
                + ("" if mlm is not None else cfg.augment_model or "the teacher")
            )
            for split in ("train", UNLABELED) if UNLABELED in data.splits else ("train",):
                before = len(data.splits[split])
                data.splits[split] = augment_rows(
                    data.splits[split], data.task, model, tokenizer, cfg.augment, cfg.augment_p, cfg.seed, mlm_model=mlm
                )
                what = "training" if split == "train" else split
                print(f"augmentation: {before} → {len(data.splits[split])} {what} examples ({self.augment_estimate})")
        label2id = {n: i for i, n in enumerate(data.labels)}
        self.student_sets = encode_sets(data, self.tokenizer, cfg.max_length, label2id)
        self.teacher_sets = (
            encode_sets(data, lead.tokenizer, cfg.max_length, label2id) if self.separate else self.student_sets
        )

    def check_augmentation_fits(self) -> None:
        """Estimate what --augment makes (examples, memory) and refuse it, before any work, where it cannot fit."""
        from distilkit.budget import check_memory, human
        from distilkit.distillation.augmentation import augmented_bytes, text_fields

        cfg, data = self.cfg, self.data
        rows = [r for split in ("train", UNLABELED) for r in data.splits.get(split, [])]
        need = augmented_bytes(rows, cfg.augment, text_fields(rows, data.task), cfg.max_length)
        total = len(rows) * (cfg.augment + 1)
        what = f"--augment {cfg.augment}: {len(rows):,} examples × {cfg.augment + 1} = {total:,} training examples"
        check_memory(need, what, "use a smaller --augment, or fewer examples (--max-train-samples)")
        self.augment_estimate = f"about {human(need)} in memory"  # said when the augmentation runs

    def check_teacher(self) -> None:
        """Refuse (or, with --force, warn about) a teacher that looks untrained, before any augmenting/tokenizing."""
        data = self.data
        split = "dev" if "dev" in data.splits else "train"
        quality = checks.teacher_quality(self.lead, data.splits[split], data, self.cfg.max_length)
        self.warning = checks.check_teacher_trained(self.lead, quality, split, self.cfg.force)
        if self.warning:
            print(f"WARNING: {self.warning}")

    # ---- train: the stages in order, each resumable ----

    def train(self, work: Path, run) -> None:
        self.metric, self.greater = self.selection_metric()
        started, self.timings = time.perf_counter(), {}
        self.trainer = trainer = self.make_trainer(work)
        for i, stage in enumerate(self.stages):
            final = i == len(self.stages) - 1
            done = work / f"stage-{stage.name}.safetensors"
            # an earlier run's stage first: under several processes the others must not read a copy being written
            source = self.reused.get(stage.name) or (done if done.exists() else None)
            if source and not final:
                self.load_stage(stage.name, Path(source), done)
                continue
            self.train_stage(i, work, run)
            if not final and trainer.is_world_process_zero():
                from safetensors.torch import save_file

                save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, str(done))
                # its log history beside its TensorBoard logs: trainer_state.json is the last stage's
                save_trainer_state(trainer.state, work / "logs" / stage.name / "trainer_state.json", work)
        self.elapsed = time.perf_counter() - started
        self.is_main = trainer.is_world_process_zero()  # under accelerate launch only rank 0 writes the run folder

    def selection_metric(self) -> tuple[str, bool]:
        """The dev metric that picks the best checkpoint, and whether higher is better."""
        return metric_choice(self.data, self.cfg) if not self.cfg.general else ("loss", False)

    def make_trainer(self, work: Path) -> DistillationTrainer:
        """The DistillationTrainer of this run: the arguments of the options, the plan made in prepare."""
        cfg, data = self.cfg, self.data
        has_dev = "dev" in self.student_sets and not cfg.general
        args = training_arguments(
            cfg, work / "checkpoints", self.metric, self.greater, has_dev, DistillationArguments, distill_fields(cfg)
        )
        args.remove_unused_columns = False  # the datasets hold exactly the columns needed, example_id included
        if cfg.general:  # packed blocks are all one length: nothing to group
            args.train_sampling_strategy = "random"
        return DistillationTrainer(
            model=self.student,
            teacher_model=[t.model for t in self.teachers],
            args=args,
            train_dataset=self.student_sets["train"],
            eval_dataset=self.student_sets.get("dev") if has_dev else None,
            data_collator=collator_for("sequence-classification" if cfg.general else data.task, self.tokenizer),
            processing_class=self.tokenizer,
            compute_metrics=compute_metrics_fn(data) if has_dev else None,
            preprocess_logits_for_metrics=preprocess_logits(data.regression) if has_dev else None,
            teacher_train_dataset=self.teacher_sets["train"],
            teacher_processing_class=self.lead.tokenizer,
            distillation=self.distillation,
        )

    def load_stage(self, name: str, source: Path, done: Path) -> None:
        """Continue from a finished stage's weights: this run's own (--resume) or an earlier run's
        (--intermediate-from, copied into this run folder so that it can be reused and resumed in turn)."""
        import shutil

        from safetensors.torch import load_file

        from distilkit.training.job import process_state

        self.trainer.model.load_state_dict(load_file(str(source)))
        if source != done:
            if process_state().is_main_process and not done.exists():  # --resume: copied already
                partial = done.with_suffix(".partial")
                shutil.copyfile(source, partial)
                partial.replace(done)
            self.timings[name] = {"reused_from": self.cfg.intermediate_from}  # as given: no machine path
        print(f"stage {name}: already done, loaded {source}")

    def train_stage(self, i: int, work: Path, run) -> None:
        """One stage of the trainer, with its own TensorBoard folder, tracker runs (named <output>-<stage> when
        there are several stages) and epoch timer, resumed from its last checkpoint with --resume."""
        trainer, stage = self.trainer, self.stages[i]
        name = Path(self.cfg.output).name
        use_trackers(trainer, work / "logs" / stage.name, name if len(self.stages) == 1 else f"{name}-{stage.name}")
        trainer.pop_callback(EpochTimer)
        timer = EpochTimer()
        trainer.add_callback(timer)
        epochs = trainer.stage_settings(i)["num_train_epochs"]
        print(f"\nstage {i + 1}/{len(self.stages)}: {stage.name}, {epochs:g} epochs")
        checkpoint = run.last_checkpoint(Path(trainer.stage_output_dir(i))) if self.cfg.resume else None
        cached = trainer.caches is not None
        self.train_out = trainer.train_stage(i, resume_from_checkpoint=checkpoint)
        self.timings[stage.name] = {
            "cache_seconds": 0.0 if cached else trainer.cache_seconds,
            "epoch_seconds": timer.seconds,
        }

    # ---- save, results, summary ----

    def save(self, work: Path) -> None:
        if not self.is_main:
            return
        cfg, student = self.cfg, self.trainer.student
        check_finite_weights(student, "the student")
        if cfg.peft:  # the adapter alone, pointing to the pretrained student it was trained on
            from distilkit import adapters
            from distilkit.training.finetune import base_pointer

            pointer = base_pointer(cfg.student, resolve_model(cfg.student))
            adapters.save_adapter(student, work / "model", cfg.peft, pointer, self.data.task)
        else:
            student.save_pretrained(str(work / "model"))
        self.tokenizer.save_pretrained(str(work / "model"))

    def results(self, work: Path) -> dict:
        if not self.is_main:  # the pair is evaluated by the process that writes the run folder
            return {}
        cfg, data = self.cfg, self.data
        metrics = self.run_facts(data=data.name, task=data.task, labels=data.labels)
        metrics["train"]["unlabeled_examples"] = self.unlabeled_count
        if cfg.general:
            seconds = sum(sum(t.get("epoch_seconds", [])) for t in self.timings.values())
            metrics["train"]["tokens"] = data.tokens
            metrics["train"]["tokens_per_second"] = round(data.tokens * cfg.epochs / seconds) if seconds else None
        if self.warning:
            metrics["warning"] = self.warning
        evals = {}  # the student's scores as the Trainer names them (eval_accuracy), for the standard result files
        for split in ("dev", "test"):
            if split in self.student_sets and not cfg.general:
                sets = (self.student_sets[split], self.teacher_sets[split])
                tokenizers = (self.tokenizer, self.lead.tokenizer)
                records = {} if split == "test" and cfg.folds else None  # pooled over the folds (training/repeats.py)
                groups = groups_of(data.splits[split])
                result = evaluate_pair(
                    self.trainer.student, self.lead, *sets, data, *tokenizers, cfg.eval_batch_size, records, groups
                )
                if records:
                    write_predictions(work, records)
                metrics[split] = result
                prefix = "eval" if split == "dev" else "test"
                pair = {k: result[k] for k in ("retention", "agreement") if k in result}
                evals[prefix] = prefixed({**scalar_metrics(result["student"]), **pair}, prefix)
                evals[prefix][f"{prefix}_samples"] = len(sets[0])
                if not data.regression:
                    title = f"student on {data.split_name(split)}"
                    plot_confusion_matrix(result["student"], work / f"confusion_matrix_{split}.png", title)
        train = {**self.train_out.metrics, "train_samples": len(self.student_sets["train"])}  # the last stage's
        write_trainer_files(work, self.trainer.state, train, evals)
        return metrics

    def run_facts(self, **what: object) -> dict:
        """What metrics.json says of every distillation: the models, method, stages, layer map, training time;
        `what` (data, task, ...) goes after the models."""
        cfg = self.cfg
        return {
            "teacher": cfg.teacher,
            "student": cfg.student,
            "student_built": self.how,
            "method": cfg.method,
            "stages": [{"name": s.name, "weights": s.weights} for s in self.stages],
            **what,
            "parameters": self.total,
            "teacher_parameters": self.teacher_total,
            "layer_map": self.distillation.layer_map.describe(),
            "normalize_losses": self.distillation.normalize,
            "attention_probabilities": self.distillation.probabilities,
            "train": {
                "wall_seconds": round(self.elapsed, 1),
                "stages": self.timings,
                "examples": len(self.student_sets["train"]),
            },
        }

    def write_card(self, work: Path, metrics: dict, config: dict) -> None:
        from distilkit.hub.card_kinds import distill_card

        distill_card(work, config, metrics)

    def summary(self, final: Path, metrics: dict) -> None:
        last = "test" if "test" in metrics else "dev" if "dev" in metrics else None
        if last:
            r = metrics[last]
            show(format_table(r["student"], title=f"\nstudent on {self.data.split_name(last)}"))
            if "retention" in r:
                key = r["metric"]
                show(
                    f"\nteacher {key} {r['teacher'][key]:.4f}, student {r['student'][key]:.4f}: "
                    f"retention {100 * r['retention']:.1f}%, agreement with teacher {100 * r['agreement']:.1f}%"
                )
            if "paired" in r:
                show(f"student − teacher (paired): {describe(r['paired'])}")
        show(f"\nrun folder: {final} (student model in {final / 'model'})")
