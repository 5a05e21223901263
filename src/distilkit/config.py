"""Typed option classes: the single source of truth for the CLI and for YAML configs.

Every command takes one of the `*Config` dataclasses below. jsonargparse turns each field into a
`--field` option (with its type, default and the help line from the `Args:` docstring), reads the same
keys from a YAML file given with `--config`, and the resolved config is saved as `config.yaml` in each run.
Shared groups of options are mixin dataclasses, so `finetune` and `evaluate` spell data options alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

from distilkit.errors import DistilkitError
from distilkit.option_rules import (
    AT_LEAST_1,
    COUNT,
    FOLDS,
    FRACTION,
    FRACTION_BELOW_1,
    MAX_LENGTH,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    SEED,
    Checked,
    opt,
)

# The PEFT methods --peft can choose; each is registered by a module of distilkit.adapters, which checks that
# its registry and this list agree.
PeftMethod = Literal["lora", "prefix", "prompt", "ia3", "adapter", "bitfit"]

Task = Literal["auto", "sequence-classification", "token-classification", "embedding"]
Pooling = Literal["mean", "cls", "max"]
DataFormat = Literal["auto", "csv", "tsv", "jsonl", "conll", "parquet", "arrow", "disk"]
SplitName = Literal["train", "dev", "test"]
# The trackers --report-to can name: the Hugging Face Trainer's integrations of those names (training/tracking.py
# checks that their packages are installed before a run starts).
TRACKERS = ("tensorboard", "wandb", "mlflow", "trackio")
# The names of distillation/methods.METHODS, which checks on import that it registers exactly these. They are spelt
# here because the registry's module imports torch (through the losses) and --help must not.
MethodName = Literal["kd", "tinybert", "distilbert", "minilm"]


@dataclass
class DataOptions(Checked):
    """Where the data is and how to read it.

    Args:
        data: Built-in dataset (bbc-news, brown-pos), one data file (CSV/TSV/JSONL/CoNLL/Parquet/Arrow; split with
            --split when training), a folder (a `datasets` save_to_disk folder, one holding train/dev/test files, or
            one laid out like a Hub dataset repo), or a Hugging Face Hub dataset id such as stanfordnlp/sst2 (read
            by datasets.load_dataset, from the local cache when HF_HUB_OFFLINE=1).
        data_config: The dataset's configuration (subset) name, for a Hub id or Hub-style folder (e.g. mrpc of
            nyu-mll/glue).
        data_revision: The Hub dataset's revision: a branch, tag or commit.
        train_file: Training file (overrides the train split of --data).
        dev_file: Development file used for early stopping and best-model selection.
        test_file: Test file, evaluated once at the end.
        format: File format; auto picks it from the file extension (.csv .tsv .jsonl/.json .conll/.txt .parquet
            .arrow).
        task: auto detects token classification from CoNLL files or list-valued token columns; embedding: the
            models are sentence-embedding models (a sentence-transformers folder, or an encoder with --pooling).
        regression: Treat labels as numbers (regression). Default: yes when every label is a number and some are not
            integers.
        text_column: Column with the text.
        text_pair_column: Column with the second text of a pair; auto-detected when the columns are text_a and text_b.
        label_column: Column with the label.
        group_column: Column naming the group each example belongs to (its document, product, speaker...): the
            confidence intervals then resample whole groups (examples of one document are not independent draws),
            and --folds keeps each group inside one fold.
        tokens_column: JSONL/disk token classification: column with the list of words.
        tags_column: JSONL/disk token classification: column with the list of tags.
        split: Fractions train,dev,test used to split data that has no given dev/test part (seeded, stratified).
        max_length: Maximum tokens per example; longer examples are truncated and counted (default: the smaller of
            128 and the model's positions).
        max_train_samples: Train on at most this many examples (a seeded sample of the train split); for quick runs.
        max_eval_samples: Evaluate on at most this many examples of each dev/test split (seeded sample).
    """

    data: Optional[str] = None
    data_config: Optional[str] = None
    data_revision: Optional[str] = None
    train_file: Optional[str] = None
    dev_file: Optional[str] = None
    test_file: Optional[str] = None
    format: DataFormat = "auto"
    task: Task = "auto"
    regression: Optional[bool] = None
    text_column: str = "text"
    text_pair_column: Optional[str] = None
    label_column: str = "label"
    group_column: Optional[str] = None
    tokens_column: str = "tokens"
    tags_column: str = "tags"
    split: str = "0.8,0.1,0.1"
    max_length: Optional[int] = opt(None, MAX_LENGTH)
    max_train_samples: Optional[int] = opt(None, AT_LEAST_1)
    max_eval_samples: Optional[int] = opt(None, AT_LEAST_1)


@dataclass
class TrainOptions(Checked):
    """How to train (passed on to the Hugging Face Trainer).

    Args:
        epochs: Number of training epochs.
        lr: Peak learning rate (AdamW).
        batch_size: Training batch size per device.
        eval_batch_size: Evaluation batch size per device.
        grad_accum: Gradient accumulation steps.
        warmup: Linear warm-up: a fraction of all steps when < 1, else a number of steps.
        weight_decay: AdamW weight decay.
        max_grad_norm: Gradient clipping norm (0 disables clipping).
        dropout: Override every dropout probability in the model config (e.g. 0.1).
        early_stopping: Stop after this many evaluations without improvement of the dev metric.
        metric: Dev metric that picks the best checkpoint (default: accuracy, f1 for BIO tags, mse for regression).
        freeze_embeddings: Do not train the embedding layer.
        freeze_layers: Do not train the first N transformer layers.
        precision: auto uses bf16 autocast where the hardware runs bf16 natively (GPUs that support it, CPUs with
            AVX512-BF16 or AMX) and fp32 elsewhere (emulated bf16 is much slower).
        seed: Random seed for initialisation and shuffling (and, unless --data-seed is given, the data's splits).
        data_seed: Seed of the data's split (--split), samples (--max-train-samples) and folds (--folds); default:
            --seed. --seeds varies --seed and keeps this one, so every seed trains and is scored on the same examples.
        seeds: Train this many times, with seeds --seed, --seed+1, ...: the run folder gets the run with the best dev
            score (never chosen by test), and metrics.json the mean ± sd and every seed's scores (seeds/seed-N/ holds
            each run). N seeds take N times as long.
        folds: Stratified K-fold cross-validation on one labelled file: each fold is the test split once, the rest
            is split into train and dev by --split's train:dev ratio. metrics.json's test scores and intervals are
            pooled over all K folds' predictions; model/ is the fold with the best dev score; folds/fold-N/ holds
            each run. K folds take K times as long.
        fold: With --folds K: run only fold N (0 to K-1), e.g. to spread the folds over machines.
        logging_steps: Log training loss every N steps (TensorBoard and progress bar).
        threads: CPU threads for torch (default: torch's choice).
        adversarial: Adversarial training on the word embeddings: fgm or pgd.
        adversarial_epsilon: Size of the FGM perturbation / radius of the PGD ball.
        pgd_steps: PGD inner steps.
        pgd_alpha: PGD step size.
        save_steps: Also checkpoint every N optimizer steps, so --resume continues mid-epoch (long epochs, such as
            general distillation on a corpus); with a dev set, evaluation runs at the same steps.
        report_to: Trackers that get the training logs (loss parts included): tensorboard (into the run's logs/),
            wandb, mlflow, trackio, or none; several comma-separated, e.g. tensorboard,mlflow.
        resume: Continue an interrupted run in the same output folder from its last checkpoint.
        overwrite: Replace an existing finished run folder.
    """

    epochs: float = opt(3.0, POSITIVE)
    lr: float = opt(5e-5, POSITIVE)
    batch_size: int = opt(32, AT_LEAST_1)
    eval_batch_size: int = opt(64, AT_LEAST_1)
    grad_accum: int = opt(1, AT_LEAST_1)
    warmup: float = opt(0.1, NON_NEGATIVE)
    weight_decay: float = opt(0.01, NON_NEGATIVE)
    max_grad_norm: float = opt(1.0, NON_NEGATIVE)
    dropout: Optional[float] = opt(None, FRACTION_BELOW_1)
    early_stopping: Optional[int] = opt(None, AT_LEAST_1)
    metric: Optional[str] = None
    freeze_embeddings: bool = False
    freeze_layers: int = opt(0, COUNT)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    seed: int = opt(42, SEED)
    data_seed: Optional[int] = opt(None, SEED)
    seeds: int = opt(1, AT_LEAST_1)
    folds: Optional[int] = opt(None, FOLDS)
    fold: Optional[int] = opt(None, COUNT)
    logging_steps: int = opt(10, AT_LEAST_1)
    threads: Optional[int] = opt(None, AT_LEAST_1)
    adversarial: Optional[Literal["fgm", "pgd"]] = None
    adversarial_epsilon: float = opt(1.0, POSITIVE)
    pgd_steps: int = opt(3, AT_LEAST_1)
    pgd_alpha: float = opt(0.3, POSITIVE)
    save_steps: Optional[int] = opt(None, AT_LEAST_1)
    report_to: Union[list[str], str] = "tensorboard"
    resume: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.report_to = parse_report_to(self.report_to)
        if self.fold is not None and (self.folds is None or self.fold >= self.folds):
            raise DistilkitError(
                f"--fold {self.fold}: needs --folds K with K > {self.fold} (folds are numbered 0 to K-1)"
            )
        if self.seeds > 1 and self.folds:
            raise DistilkitError(
                f"--seeds {self.seeds} with --folds {self.folds}: choose one (seeds measure the training's spread, "
                "folds the data's)"
            )

    @property
    def split_seed(self) -> int:
        """The seed of the data's splits, samples and folds."""
        return self.seed if self.data_seed is None else self.data_seed

    @property
    def this_fold(self) -> tuple[int, int] | None:
        """(fold, folds) of a run of one fold, else None."""
        return None if self.fold is None or self.folds is None else (self.fold, self.folds)


@dataclass
class PeftOptions(Checked):
    """Parameter-efficient training (the saved model is then the adapter alone, with a pointer to its base).

    Args:
        peft: Method: lora, prefix, prompt, ia3 (through the peft library), adapter (bottleneck), bitfit.
        lora_r: LoRA rank.
        lora_alpha: LoRA scaling alpha.
        lora_dropout: LoRA dropout.
        target_modules: Linear modules to adapt (LoRA, IA3), e.g. [query, value]; default: peft's choice per
            architecture.
        virtual_tokens: Number of virtual tokens (prefix, prompt).
        adapter_size: Bottleneck size of adapters.
        adapter_placement: pfeiffer (after the feed-forward block) or houlsby (after attention and feed-forward).
    """

    peft: Optional[PeftMethod] = None
    lora_r: int = opt(8, AT_LEAST_1)
    lora_alpha: int = opt(16, AT_LEAST_1)
    lora_dropout: float = opt(0.1, FRACTION_BELOW_1)
    target_modules: Optional[list[str]] = None
    virtual_tokens: int = opt(20, AT_LEAST_1)
    adapter_size: int = opt(64, AT_LEAST_1)
    adapter_placement: Literal["pfeiffer", "houlsby"] = "pfeiffer"


@dataclass
class ContinualOptions(Checked):
    """Continual learning: continue a finished run on new data without forgetting the old task.

    Args:
        continue_from: A finished finetune run folder to continue from (its model; new labels extend its map).
        preserve: kd = Learning without Forgetting: distil the previous model's old-label outputs on the new inputs.
        preserve_weight: Weight λ of the preserving KD term.
        replay: Mix this many examples of the old training data into training: from the data sample that the run of
            --continue-from kept (it must have run with --keep-data-sample).
        keep_data_sample: Keep a seeded sample of this run's train (1,000) and test (500) rows in the run folder's
            data_sample/, beside model/ (never in it), for a later --continue-from to replay and to measure
            forgetting on. Off by default: a run folder then holds none of your data.
    """

    continue_from: Optional[str] = None
    preserve: Optional[Literal["kd"]] = None
    preserve_weight: float = opt(1.0, NON_NEGATIVE)
    replay: int = opt(0, COUNT)
    keep_data_sample: bool = False


@dataclass
class FinetuneConfig(DataOptions, TrainOptions, PeftOptions, ContinualOptions):
    """Fine-tune an encoder (teacher or student) on labelled data and write a run folder.

    Args:
        model: Hugging Face model folder or hub id, a distilkit run folder, or an alias: minilm-l6 (packaged
            all-MiniLM-L6-v2) or all-mpnet-base-v2 (after make mpnet).
        output: Run folder to write (config.yaml, model/, metrics.json, logs/).
    """

    model: str = "minilm-l6"
    output: str = "runs/finetune"


@dataclass
class DistillConfig(DataOptions, TrainOptions, PeftOptions):
    """Distil one or more fine-tuned teachers into a smaller student and write a run folder.

    Args:
        teacher: Fine-tuned teacher: a run folder, model folder or hub id. Several teachers: separate with commas.
        teacher_weights: Weights of several teachers' soft targets, comma-separated (default: equal).
        student: A size spec such as 4L-312H-12A-1200F (random init, teacher's tokenizer), a layer count such as 3
            (init from uniformly chosen teacher layers), half (half the teacher's layers), layers:0,2,4 (chosen
            teacher layers), or a pretrained model folder / hub id.
        method: Distillation method, a preset of losses and stages: kd, tinybert (two stages), distilbert, minilm.
        losses: Custom loss weights for the last stage, replacing the method's, e.g. {kd: 0.5, ce: 0.5, hidden_mse: 1}.
            Names: any registered loss (an unknown name is refused with the list), your own included (--plugins).
        plugins: Python modules or .py files to import first, comma-separated, e.g. my_losses.py to register your
            own losses with distilkit.losses.register_loss.
        alpha: Weight of the label loss (CE); KD gets 1 - alpha (default: the method's).
        temperature: Softmax temperature of logit KD; the KD term is scaled by T² (default: the method's).
        layer_map: auto (copied for a student built from teacher layers, else uniform), copied (each student layer
            ← the teacher layer it was copied from), uniform (TinyBERT), last, or student:teacher hidden-state pairs
            like 0:0,1:2,2:4 (default: the method's).
        relation_heads: MiniLM relation heads (default: the teacher's head count when it divides both widths).
        attention_probabilities: Attention loss on softmax probabilities (bounded, compared raw) instead of
            pre-softmax scores (default: the method's: scores for tinybert, probabilities for the others).
        normalize_losses: Make the MSE layer losses (embedding, hidden, attention) relative: divided by the teacher's
            mean square, so 0 = exact, 1 = as far off as zeros, and a weight of 1 means the same for every loss;
            false gives the papers' raw MSE (default: the method's: raw for tinybert with a random-init student,
            relative otherwise).
        intermediate_epochs: Epochs of the intermediate stage of two-stage methods (default: --epochs).
        intermediate_lr: Learning rate of the intermediate stage (default: --lr).
        intermediate_from: An earlier run of the same two-stage method (its --output): skip the intermediate stage and
            start from the weights that run saved after it; every option shaping that stage must be the same (checked),
            only the prediction stage's (epochs, lr, alpha, temperature, losses) may change.
        cache: Cache the teacher's outputs on disk (computed once, reused across epochs and runs).
        cache_dir: Cache folder (default: $DISTILKIT_CACHE or ~/.cache/distilkit/teacher).
        cache_max_gb: Cache intermediate teacher outputs only when they fit in this many GB (logits always).
        augment: Add N augmented copies of each training example (TinyBERT-style word replacement).
        augment_p: Probability of replacing each word when augmenting.
        augment_model: Model whose candidates replace words when augmenting: its masked-LM predictions when it has a
            trained MLM head, else its nearest embedding neighbours (default: the teacher's embedding neighbours).
        unlabeled: Transfer set: texts without labels (a .txt with one text per line, CSV/TSV/JSONL/CoNLL with any
            label column ignored, or a save_to_disk folder) added to the training set; the teacher labels them
            (KD and layer losses), label losses skip them.
        unlabeled_ratio: Use at most this many unlabeled examples per labelled training example (a seeded sample);
            default: all of them.
        general: General distillation on raw text (one text per line, no labels): intermediate losses only.
        separate_tokenization: Allow a student tokenizer that differs from the teacher's (logit KD only, sequence
            classification): the teacher reads its own tokenization of the same texts.
        force: Distil even from a teacher that looks untrained.
        pooling: --task embedding: how an encoder without a sentence-transformers pooling turns its token states into
            one vector: mean, cls or max (default: the teacher folder's own pooling).
        output: Run folder to write.
    """

    teacher: str = ""
    teacher_weights: Optional[str] = None
    student: str = "half"
    method: MethodName = "kd"
    losses: Optional[dict[str, float]] = None
    plugins: Optional[str] = None
    alpha: Optional[float] = opt(None, FRACTION)
    temperature: Optional[float] = opt(None, POSITIVE)
    layer_map: Optional[str] = None
    relation_heads: Optional[int] = opt(None, AT_LEAST_1)
    attention_probabilities: Optional[bool] = None
    normalize_losses: Optional[bool] = None
    intermediate_epochs: Optional[float] = opt(None, POSITIVE)
    intermediate_lr: Optional[float] = opt(None, POSITIVE)
    intermediate_from: Optional[str] = None
    cache: bool = True
    cache_dir: Optional[str] = None
    cache_max_gb: float = opt(4.0, NON_NEGATIVE)
    augment: int = opt(0, COUNT)
    augment_p: float = opt(0.4, PROBABILITY)
    augment_model: Optional[str] = None
    unlabeled: Optional[str] = None
    unlabeled_ratio: Optional[float] = opt(None, POSITIVE)
    general: bool = False
    separate_tokenization: bool = False
    force: bool = False
    pooling: Optional[Pooling] = None
    output: str = "runs/distill"


def parse_split_fractions(split: str) -> tuple[float, float, float]:
    """Parse '0.8,0.1,0.1' into three fractions that sum to 1."""
    try:
        parts = [float(x) for x in split.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6 or parts[0] <= 0:
        raise DistilkitError(
            f"--split {split!r}: give three non-negative fractions train,dev,test that sum to 1, e.g. 0.8,0.1,0.1"
        )
    return parts[0], parts[1], parts[2]


def parse_report_to(value) -> list[str]:
    """--report-to as a list of tracker names: "tensorboard,mlflow", a list, or "none" (no tracker: [])."""
    names = value.split(",") if isinstance(value, str) else list(value or [])
    names = [str(name).strip().lower() for name in names if str(name).strip()]
    if "none" in names:
        if len(names) > 1:
            raise DistilkitError(f"--report-to {','.join(names)!r}: none means no tracker; give it alone")
        return []
    for name in names:
        if name not in TRACKERS:
            raise DistilkitError(
                f"--report-to {name!r}: unknown tracker; choose from {', '.join(TRACKERS)} or none (several "
                "comma-separated, e.g. tensorboard,mlflow)"
            )
    return list(dict.fromkeys(names))  # each once, in the order given


def describe_data(value) -> str:
    """In-memory data (a datasets.Dataset or DatasetDict, a list of rows) as config.yaml records it: what it is, its
    size and a fingerprint, so that --resume can tell the same data from other data."""
    import hashlib
    import json

    if hasattr(value, "keys") and hasattr(value, "values") and not isinstance(value, dict):  # a DatasetDict
        return "in-memory DatasetDict {" + ", ".join(f"{k}: {describe_data(v)}" for k, v in value.items()) + "}"
    if hasattr(value, "num_rows"):  # a Dataset
        return f"in-memory Dataset ({value.num_rows} rows, fingerprint {getattr(value, '_fingerprint', '?')})"
    digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"in-memory rows ({len(value)} rows, sha256 {digest})"


def options_of(config) -> dict:
    """A config's options as a plain dict (config.yaml, resume checks): in-memory data is described, not copied."""
    import copy
    import dataclasses

    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        in_memory = f.name == "data" and value is not None and not isinstance(value, str)
        out[f.name] = describe_data(value) if in_memory else copy.deepcopy(value)
    return out
