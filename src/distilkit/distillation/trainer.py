"""`DistillationTrainer`: distilkit's distillation as a Hugging Face `Trainer` for one's own training code.

    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=DistillationArguments(output_dir="out", method="tinybert"),
        train_dataset=train, eval_dataset=dev, processing_class=tokenizer,
    )
    trainer.train()
    trainer.save_model("out/student")

Everything the method needs is set up inside: the stages and their losses, the layer map, the projections that
lift the student's hidden states to the teacher's width, capture of attention scores and Q/K/V, the teacher
cache. `train()` runs every stage of the method (TinyBERT: the intermediate stage, then the prediction stage),
each with its own epochs, learning rate and schedule; `train_stage(i)` runs one. The trainer trains the student
wrapped with its projections (`trainer.model`); `trainer.student` is the student, and `save_model` saves it alone,
as a plain model folder. `distilkit distill` is this trainer plus data loading and a run folder.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from transformers import set_seed

from distilkit.distillation.arguments import DistillationArguments
from distilkit.distillation.distiller import Distiller, StudentWithProjections
from distilkit.distillation.methods import Stage
from distilkit.distillation.planning import Distillation, plan_distillation
from distilkit.errors import DistilkitError
from distilkit.training.adversarial import AdversarialMixin
from distilkit.training.guard import FiniteGradients, FiniteLossMixin

EXTRA_COLUMNS = ["example_id", "labeled"]  # the teacher cache's row index, a transfer-set row's flag
# The arguments a stage sets for itself. They are set on the one arguments object the Trainer was built with:
# a second TrainingArguments would set up the devices again, and that resets accelerate's shared state.
STAGE_FIELDS = (
    "output_dir",
    "num_train_epochs",
    "learning_rate",
    "eval_strategy",
    "load_best_model_at_end",
    "metric_for_best_model",
)


class DistillationTrainer(FiniteLossMixin, AdversarialMixin, Distiller):
    """A `Trainer` that distils `teacher_model` (one model, or a list: multi-teacher KD) into `model`.

    Arguments are the Trainer's, with `args` a `DistillationArguments`. Datasets are tokenized `datasets.Dataset`s
    with the usual columns (input_ids, attention_mask, labels, ...); other columns are dropped as the Trainer
    does. Keyword-only: `teacher_train_dataset` (the training rows as the teacher tokenizes them, when its
    tokenizer differs: logit KD only, needs the cache), `teacher_processing_class` (that tokenizer),
    `copied_layers` (the teacher layers the student was initialised from, for `layer_map="copied"`; distilkit's
    `build_student` records them itself) and `distillation` (a plan made beforehand by `plan_distillation`).
    """

    def __init__(
        self,
        model: Any = None,
        teacher_model: Any = None,
        args: DistillationArguments | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        data_collator: Any = None,
        processing_class: Any = None,
        callbacks: list[Any] | None = None,
        compute_metrics: Callable[..., dict[str, float]] | None = None,
        preprocess_logits_for_metrics: Callable[..., Any] | None = None,
        *,
        teacher_train_dataset: Any = None,
        teacher_processing_class: Any = None,
        copied_layers: list[int] | None = None,
        distillation: Distillation | None = None,
        **kwargs: Any,
    ) -> None:
        if model is None or teacher_model is None:
            raise DistilkitError("DistillationTrainer needs model= (the student) and teacher_model= (the teacher)")
        args = args if args is not None else DistillationArguments(output_dir="distilkit-output")
        if not isinstance(args, DistillationArguments):
            raise TypeError(
                f"args must be a distilkit.DistillationArguments (TrainingArguments plus the distillation options), "
                f"not {type(args).__name__}: DistillationArguments(**your_args.to_dict()) converts one"
            )
        teachers = list(teacher_model) if isinstance(teacher_model, (list, tuple)) else [teacher_model]
        self.distillation = distillation or plan_distillation(model, teachers, args, copied_layers)
        self.final_settings = {name: getattr(args, name) for name in STAGE_FIELDS}
        if args.cache:
            train_dataset = with_example_ids(train_dataset)
            teacher_train_dataset = with_example_ids(teacher_train_dataset)
        self.teacher_train_dataset = teacher_train_dataset if teacher_train_dataset is not None else train_dataset
        self.teacher_processing_class = teacher_processing_class or processing_class
        self.cache_seconds: float | None = None
        super().__init__(
            model=StudentWithProjections(model, self.distillation.projections),
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=data_collator,
            processing_class=processing_class,
            callbacks=callbacks,
            compute_metrics=compute_metrics,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
            plan=self.distillation.loss_plan(self.distillation.stages[-1]),
            teachers=teachers,
            caches=None,
            **kwargs,
        )
        self.caches = None  # built (or found) when the first stage starts
        self.adversarial, self.epsilon = args.adversarial, args.adversarial_epsilon
        self.pgd_steps, self.pgd_alpha = args.pgd_steps, args.pgd_alpha
        self.add_callback(FiniteGradients())

    @property
    def student(self) -> Any:
        """The student being trained (without its projections)."""
        return self.model.student

    @property
    def stages(self) -> list[Stage]:
        return self.distillation.stages

    # ---- the stages ----

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any) -> Any:
        """Run every stage of the method in order; `resume_from_checkpoint` applies to the last stage."""
        out = None
        for i in range(len(self.stages)):
            last = i == len(self.stages) - 1
            out = self.train_stage(i, resume_from_checkpoint if last else None, **kwargs)
        return out

    def train_stage(self, index: int, resume_from_checkpoint: str | bool | None = None, **kwargs: Any) -> Any:
        """One stage: its losses, epochs and learning rate, a fresh optimizer and schedule, evaluation only in the
        last stage, checkpoints in `stage_output_dir(index)`. The teacher cache is built (or found) first."""
        self.plan = self.distillation.loss_plan(self.stages[index])
        for name, value in self.stage_settings(index).items():
            setattr(self.args, name, value)
        self.optimizer, self.lr_scheduler = None, None
        if self.caches is None:
            started = time.perf_counter()
            self.caches = self.build_caches()
            self.cache_seconds = round(time.perf_counter() - started, 2)
        else:  # one cache serves every stage (it holds what the union of their losses reads)
            for cache in self.caches:
                print(f"teacher cache: reusing {cache.folder}")
        set_seed(self.args.seed)  # each stage starts from the seed, as a new Trainer would
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def stage_settings(self, index: int) -> dict[str, Any]:
        """The STAGE_FIELDS of stage `index`: those given for the last stage; an intermediate stage has its own
        epochs and learning rate (intermediate_epochs, intermediate_lr), no evaluation, no best-model selection."""
        from transformers.trainer_utils import IntervalStrategy

        settings = {**self.final_settings, "output_dir": self.stage_output_dir(index)}
        if index < len(self.stages) - 1:
            settings.update(eval_strategy=IntervalStrategy.NO, load_best_model_at_end=False, metric_for_best_model=None)
        if self.stages[index].epochs_option == "intermediate_epochs":
            args = self.args
            settings.update(
                num_train_epochs=args.intermediate_epochs or settings["num_train_epochs"],
                learning_rate=args.intermediate_lr or settings["learning_rate"],
            )
        return settings

    def stage_output_dir(self, index: int) -> str:
        """Checkpoints of a stage: output_dir/<stage name> (output_dir/prediction for a one-stage method), so that
        each stage resumes from its own."""
        return os.path.join(self.final_settings["output_dir"], self.stages[index].name)

    def build_caches(self) -> list[Any]:
        from distilkit.distillation.setup import build_caches

        args, dist = self.args, self.distillation
        teacher_sets = [self.teacher_train_dataset] * len(self.teachers)
        tokenizer = self.teacher_processing_class
        # without a tokenizer, the student's collator pads the teacher's rows too (the same tokenization)
        collator = self.data_collator if tokenizer is None else None
        return build_caches(
            args, self.teachers, teacher_sets, dist.union_plan, dist.dims, self.args, tokenizer, collator
        )

    # ---- the student alone on disk ----

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """A checkpoint (internal) keeps the projections, so training can resume; a save asked for by the user
        writes the student alone, a plain model folder, with the tokenizer."""
        if _internal_call:
            super().save_model(output_dir, _internal_call=True)
            return
        output_dir = output_dir or self.args.output_dir
        if self.is_world_process_zero():
            self.student.save_pretrained(output_dir)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)

    def _set_signature_columns_if_needed(self) -> None:
        """The columns to keep are those the student's forward takes (the wrapper's forward takes **inputs), the
        labels, and the cache's row index."""
        if getattr(self, "_signature_columns", None) is None:
            import inspect

            student = self.student.get_base_model() if hasattr(self.student, "get_base_model") else self.student
            names = list(inspect.signature(student.forward).parameters)
            self._signature_columns = names + ["label", "label_ids", *self.label_names, *EXTRA_COLUMNS]


def with_example_ids(dataset: Any) -> Any:
    """The dataset with an `example_id` column (its row index: the teacher cache's key), added if missing."""
    if dataset is None or "example_id" in getattr(dataset, "column_names", []):
        return dataset
    return dataset.add_column("example_id", list(range(len(dataset))))
