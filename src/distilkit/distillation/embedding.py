"""`distilkit distill --task embedding`: an embedding teacher + raw text → a smaller embedding model.

The job is `distill`'s (distillation/distill.py) with other models and data: the teacher is an `EmbeddingModel`
(a sentence-transformers folder, or an encoder with `--pooling`), the student the same pooling over a smaller
encoder (teacher layers, a size spec, or a pretrained model), and the data is text without labels, each text one
example (no packing: a sentence embedding is of one text). The method's KD term becomes `sentence_mse` on the
pooled, normalised embeddings (distillation/methods.py), with a learned projection when the widths differ; the
layer losses (hidden, attention, MiniLM relations) combine with it where the tokenizers match. The teacher cache
stores the teacher's embeddings once (and its layers under the cap), as sentence-transformers' recipe
precomputes them. The student is saved as a sentence-transformers folder; the dev texts (held out from the
corpus, or `--dev-file`) measure how well the student keeps the teacher's similarities.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from distilkit.console import show
from distilkit.data import builtin
from distilkit.distillation import checks
from distilkit.distillation.arguments import DistillationArguments
from distilkit.distillation.distill import DistillJob
from distilkit.distillation.general import load_corpus
from distilkit.distillation.methods import describe_stages, resolve_stages
from distilkit.distillation.planning import plan_distillation
from distilkit.distillation.setup import corpus_cache, distill_fields
from distilkit.distillation.students import build_student, copied_layers, is_pretrained_spec
from distilkit.distillation.trainer import DistillationTrainer
from distilkit.embeddings.model import EmbeddingModel, load_embedding_model, save_sentence_transformer
from distilkit.errors import DistilkitError
from distilkit.losses.registry import import_plugins, reads_of
from distilkit.models.families import layer_count
from distilkit.training.guard import check_finite_weights
from distilkit.training.trainer_setup import count_parameters, training_arguments

DEV_TEXTS = 500  # held out from the corpus when no --dev-file is given (at most 5% of it)
Teacher = dataclasses.make_dataclass("Teacher", ["path", "model", "tokenizer"])
REFUSED = {  # options of task distillation that an embedding distillation cannot use, and why
    "general": "the corpus is read text by text already (drop --general)",
    "augment": "augmentation replaces words of labelled examples",
    "unlabeled": "every text is unlabelled here: give them all as --data",
    "peft": "train the small student fully (PEFT is not wired for embedding students yet)",
    "folds": "there are no labels to fold",
}


def check_embedding_options(cfg) -> None:
    """Refuse, in one line each, what `--task embedding` cannot do, before any model loads."""
    for name, why in REFUSED.items():
        if getattr(cfg, name, None):
            raise DistilkitError(f"--{name.replace('_', '-')} with --task embedding: {why}")
    if "," in cfg.teacher:
        raise DistilkitError("--task embedding takes one teacher (give one sentence-transformers folder)")
    if not (cfg.data or cfg.train_file):
        raise DistilkitError(
            "--task embedding needs text to distil on: --data FILE|FOLDER (one text per line, or JSONL/CSV with "
            "--text-column) or a built-in dataset such as bbc-news (its training texts)"
        )


def load_texts(cfg) -> dict:
    """{"train": Dataset, "dev": Dataset} of one `text` column: a built-in dataset's train / dev texts, or the
    corpus (files, a folder, a save_to_disk folder) with --dev-file or a seeded held-out part as dev."""
    import datasets

    source = str(cfg.train_file or cfg.data)
    if builtin.is_builtin(source):
        splits = builtin.load(source)
        texts = {s: [str(r["text"]) for r in splits[s]] for s in ("train", "dev")}
        sets = {s: datasets.Dataset.from_dict({"text": t}) for s, t in texts.items()}
    else:
        cache = corpus_cache(cfg)
        corpus = load_corpus(source, cfg.text_column, cache).filter(lambda r: bool(r["text"] and r["text"].strip()))
        if cfg.dev_file:
            sets = {"train": corpus, "dev": load_corpus(cfg.dev_file, cfg.text_column, cache)}
        elif len(corpus) >= 40:
            held = min(DEV_TEXTS, len(corpus) // 20)
            parts = corpus.train_test_split(test_size=held, seed=cfg.seed)
            sets = {"train": parts["train"], "dev": parts["test"]}
        else:
            sets = {"train": corpus}
    if not len(sets["train"]):
        raise DistilkitError(f"--data {source}: no text to distil on (every row is empty or blank)")
    if cfg.max_train_samples and len(sets["train"]) > cfg.max_train_samples:
        sets["train"] = sets["train"].shuffle(seed=cfg.seed).select(range(cfg.max_train_samples))
    return sets


def similarity_agreement(teacher: torch.Tensor, student: torch.Tensor) -> float:
    """Spearman correlation of the teacher's and the student's cosine similarities over all pairs of texts: 1
    when the student ranks every pair as the teacher does, whatever the widths."""
    from scipy.stats import spearmanr

    def pairwise(x: torch.Tensor) -> np.ndarray:
        x = torch.nn.functional.normalize(x.float(), dim=-1)
        upper = torch.triu_indices(len(x), len(x), offset=1)
        return (x @ x.T)[upper[0], upper[1]].numpy()

    return float(spearmanr(pairwise(teacher), pairwise(student)).statistic)


class EmbeddingDistillJob(DistillJob):
    """`distill --task embedding` as the steps of training/job.py (training and stages as `distill`'s)."""

    def prepare(self) -> None:
        from transformers import set_seed

        cfg = self.cfg
        check_embedding_options(cfg)
        set_seed(cfg.seed)
        import_plugins(cfg.plugins)
        model, tokenizer, self.teacher_how = load_embedding_model(cfg.teacher, cfg.pooling)
        self.lead = Teacher(cfg.teacher, model, tokenizer)
        self.teachers = [self.lead]
        cfg.max_length = cfg.max_length or min(128, model.max_seq_length or 512)
        stages = resolve_stages(cfg.method, cfg.alpha, cfg.losses, False, embedding=True)
        self.logits_only = reads_of({k for stage in stages for k in stage.weights}) <= {"labels", "logits"}
        self.texts = load_texts(cfg)
        self.build_student()
        self.encode()
        self.reused, self.warning, self.unlabeled_count = {}, None, 0
        if cfg.intermediate_from:
            from distilkit.distillation import reuse
            from distilkit.distillation.distiller import StudentWithProjections

            self.reused = reuse.stage_files(cfg.intermediate_from, self.given, self.stages)
            reuse.check_fits(self.reused, StudentWithProjections(self.student, self.distillation.projections))

    def build_student(self) -> None:
        """The student: the teacher's pooling over a smaller encoder, or a pretrained embedding model."""
        cfg, teacher = self.cfg, self.lead.model
        if is_pretrained_spec(cfg.student):
            student, tokenizer, how = load_embedding_model(cfg.student, cfg.pooling or teacher.pooling, "--student")
            how = f"pretrained {cfg.student} ({how})"
        else:
            encoder, how = build_student(cfg.student, teacher.encoder, "general", cfg.seed)
            how = how.replace(" and task head", "")  # an embedding model has none
            student = EmbeddingModel(encoder, teacher.pooling, teacher.normalize, teacher.max_seq_length)
            tokenizer = self.lead.tokenizer
        self.separate = checks.check_tokenizers(
            self.lead.tokenizer, tokenizer, cfg.separate_tokenization, self.logits_only, "sequence-classification"
        )
        if self.separate and not cfg.cache:
            raise DistilkitError("--separate-tokenization needs the teacher cache; drop --cache false")
        copied = copied_layers(cfg.student, layer_count(teacher))
        self.student, self.how, self.tokenizer = student, how, tokenizer
        self.distillation = plan_distillation(student, [teacher], cfg, copied)
        self.total, _ = count_parameters(student)
        self.teacher_total, _ = count_parameters(teacher)
        print(f"teacher: {cfg.teacher} ({self.teacher_how}) — {self.teacher_total / 1e6:.2f}M parameters")
        print(f"student: {how} — {self.total / 1e6:.2f}M parameters ({self.teacher_total / self.total:.1f}x smaller)")
        if not self.logits_only:
            print(f"layer map: {self.distillation.layer_map.describe()}")
        print("stages: " + describe_stages(self.stages))

    def encode(self) -> None:
        """Each text tokenized on its own (truncated at --max-length): one text, one embedding."""
        length = self.cfg.max_length

        def tokenized(tokenizer) -> dict:
            def encode_batch(batch):
                return tokenizer(batch["text"], truncation=True, max_length=length)

            columns = ["text"]
            return {
                split: texts.map(encode_batch, batched=True, remove_columns=columns, desc=f"tokenizing {split}")
                for split, texts in self.texts.items()
            }

        self.student_sets = tokenized(self.tokenizer)
        self.teacher_sets = tokenized(self.lead.tokenizer) if self.separate else self.student_sets
        dev = len(self.texts.get("dev", []))
        print(f"texts: {len(self.texts['train']):,} to distil on, {dev:,} dev texts held out; up to {length} tokens")

    def selection_metric(self) -> tuple[str, bool]:
        return "loss", False

    def make_trainer(self, work: Path) -> DistillationTrainer:
        from transformers import DataCollatorWithPadding

        cfg = self.cfg
        args = training_arguments(
            cfg, work / "checkpoints", "loss", False, False, DistillationArguments, distill_fields(cfg)
        )
        args.remove_unused_columns = False  # the datasets hold exactly the columns needed, example_id included
        return DistillationTrainer(
            model=self.student,
            teacher_model=[self.lead.model],
            args=args,
            train_dataset=self.student_sets["train"],
            data_collator=DataCollatorWithPadding(self.tokenizer),
            processing_class=self.tokenizer,
            teacher_train_dataset=self.teacher_sets["train"],
            teacher_processing_class=self.lead.tokenizer,
            distillation=self.distillation,
        )

    def save(self, work: Path) -> None:
        if not self.is_main:
            return
        check_finite_weights(self.trainer.student, "the student")
        save_sentence_transformer(self.trainer.student, self.tokenizer, work / "model")

    def results(self, work: Path) -> dict:
        if not self.is_main:
            return {}
        cfg, student = self.cfg, self.trainer.student
        metrics = self.run_facts(
            data=str(cfg.train_file or cfg.data),
            task="embedding",
            pooling=student.pooling,
            normalize=student.normalize,
            dimensions=student.width,
        )
        if "dev" in self.texts and len(self.texts["dev"]) >= 3:
            metrics["dev"] = self.dev_agreement()
        return metrics

    def dev_agreement(self) -> dict:
        """How the student keeps the teacher's geometry on the dev texts."""
        texts = list(self.texts["dev"]["text"])[:DEV_TEXTS]
        started = time.perf_counter()
        device = next(self.trainer.student.parameters()).device
        self.lead.model.to(device)
        t = self.lead.model.encode(texts, self.lead.tokenizer, self.cfg.max_length, self.cfg.eval_batch_size)
        s = self.trainer.student.encode(texts, self.tokenizer, self.cfg.max_length, self.cfg.eval_batch_size)
        out = {"texts": len(texts), "similarity_spearman": round(similarity_agreement(t, s), 4)}
        if t.shape[1] == s.shape[1] and "sentence" not in self.distillation.projections:
            out["cosine_to_teacher"] = round(float(torch.nn.functional.cosine_similarity(t, s).mean()), 4)
        out["seconds"] = round(time.perf_counter() - started, 1)
        return out

    def write_card(self, work: Path, metrics: dict, config: dict) -> None:
        from distilkit.hub.card_kinds import embedding_card

        embedding_card(work, config, metrics)

    def summary(self, final: Path, metrics: dict) -> None:
        dev = metrics.get("dev")
        if dev:
            cosine = dev.get("cosine_to_teacher")
            cosine = f", mean cosine to the teacher {cosine:.4f}" if cosine is not None else ""
            show(
                f"\nstudent on {dev['texts']} dev texts: its pairwise similarities rank as the teacher's with Spearman "
                f"{dev['similarity_spearman']:.4f}{cosine}"
            )
        show(f"\nrun folder: {final} (sentence-transformers model in {final / 'model'})")
