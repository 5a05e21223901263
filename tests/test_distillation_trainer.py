"""`DistillationTrainer` in one's own Hugging Face code: own models, own `load_dataset` + tokenizer `map`, own
TrainingArguments fields, `DataCollatorWithPadding`; and the same student as `distilkit distill` and
`distilkit.distill(...)` from the same seed and options (logits within 1e-6), for kd, tinybert (both stages) and
minilm, with and without the cache."""

import json

import numpy as np
import pytest
import torch
from conftest import run_cli, topic_rows, write_csv

from distilkit.errors import DistilkitError

EPOCHS = {
    "kd": ["--epochs", "2"],
    "tinybert": ["--epochs", "1", "--intermediate-epochs", "1"],
    "minilm": ["--epochs", "2"],
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("own-data")
    write_csv(folder / "test.csv", topic_rows(12, seed=7))  # given, so that the CLI does not carve one from train
    train = write_csv(folder / "train.csv", topic_rows(96, seed=5))
    return train, write_csv(folder / "dev.csv", topic_rows(24, seed=6))


def own_datasets(tokenizer, label2id, train_csv, dev_csv):
    """What a user's script does: load_dataset("csv") and a tokenizer map."""
    from datasets import load_dataset

    raw = load_dataset("csv", data_files={"train": str(train_csv), "validation": str(dev_csv)})

    def tokenize(batch):
        encoded = tokenizer(batch["text"], truncation=True, max_length=128)
        encoded["labels"] = [label2id[label] for label in batch["label"]]
        return encoded

    return raw.map(tokenize, batched=True, remove_columns=["text", "label"])


def accuracy(eval_pred):
    return {"accuracy": float((np.argmax(eval_pred.predictions, -1) == eval_pred.label_ids).mean())}


def own_arguments(out, method: str, cache: bool):
    """TrainingArguments fields as distilkit distill sets them from its defaults (fp32, group_by_length, best
    epoch by dev accuracy), in DistillationArguments."""
    from distilkit import DistillationArguments

    epochs = {"kd": 2, "tinybert": 1, "minilm": 2}[method]
    return DistillationArguments(
        output_dir=str(out),
        method=method,
        cache=cache,
        num_train_epochs=epochs,
        intermediate_epochs=1 if method == "tinybert" else None,
        learning_rate=1e-3,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=64,
        warmup_steps=0,
        weight_decay=0.01,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        seed=42,
        data_seed=42,
        train_sampling_strategy="group_by_length",
        report_to="none",
        use_cpu=True,
    )


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
@pytest.mark.parametrize("method", ["kd", "tinybert", "minilm"])
def test_own_trainer_code_gives_the_clis_student(topic_run, files, tmp_path, capsys, monkeypatch, method, cache):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, set_seed

    from distilkit import DistillationTrainer, build_student

    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path / "cache"))
    train_csv, dev_csv = files
    cli_out = tmp_path / "cli"
    args = ["distill", "--teacher", topic_run, "--train-file", train_csv, "--dev-file", dev_csv, "--student", "1"]
    args += ["--test-file", train_csv.parent / "test.csv"]
    args += ["--method", method, "--lr", "1e-3", "--batch-size", "16", "--warmup", "0", "--precision", "fp32"]
    args += [*EPOCHS[method], "--cache", str(cache).lower(), "--output", cli_out]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err

    teacher = AutoModelForSequenceClassification.from_pretrained(topic_run / "model")
    tokenizer = AutoTokenizer.from_pretrained(topic_run / "model")
    data = own_datasets(tokenizer, teacher.config.label2id, train_csv, dev_csv)
    set_seed(42)
    student = build_student(teacher, "1")
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=own_arguments(tmp_path / "own", method, cache),
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=accuracy,
    )
    trainer.train()
    trainer.save_model(tmp_path / "own" / "student")

    import distilkit

    options = dict(teacher=topic_run, train_file=train_csv, dev_file=dev_csv, test_file=train_csv.parent / "test.csv")
    options.update(student="1", method=method, lr=1e-3, batch_size=16, warmup=0, precision="fp32", cache=cache)
    epochs = dict(zip(EPOCHS[method][::2], EPOCHS[method][1::2]))
    options.update({k.removeprefix("--").replace("-", "_"): float(v) for k, v in epochs.items()})
    api_run = distilkit.distill(**options, output=tmp_path / "api")

    cli_student = AutoModelForSequenceClassification.from_pretrained(cli_out / "model")
    own_student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "own" / "student")
    api_student = AutoModelForSequenceClassification.from_pretrained(api_run.model)
    dev = data["validation"]
    collate = DataCollatorWithPadding(tokenizer)
    batch = collate(
        [{k: dev[i][k] for k in ("input_ids", "attention_mask", "token_type_ids")} for i in range(len(dev))]
    )
    with torch.no_grad():
        cli, own, api = (m.eval()(**batch).logits for m in (cli_student, own_student, api_student))
    assert float((cli - own).abs().max()) <= 1e-6 and float((cli - api).abs().max()) <= 1e-6
    saved = json.loads((tmp_path / "own" / "student" / "config.json").read_text())
    assert "distilkit" not in json.dumps(saved) and not any("projection" in k for k in own_student.state_dict())


def test_a_wider_teacher_gets_projections_that_are_trained_and_not_saved(topic_run, files, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distilkit import DistillationArguments, DistillationTrainer, build_student

    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path / "cache"))
    teacher = AutoModelForSequenceClassification.from_pretrained(topic_run / "model")
    tokenizer = AutoTokenizer.from_pretrained(topic_run / "model")
    data = own_datasets(tokenizer, teacher.config.label2id, *files)
    student = build_student(teacher, "1L-16H-2A-32F")  # half the teacher's width
    args = DistillationArguments(
        output_dir=str(tmp_path / "out"),
        method="tinybert",
        num_train_epochs=1,
        learning_rate=1e-3,
        report_to="none",
        per_device_train_batch_size=16,
        use_cpu=True,
    )
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=args, train_dataset=data["train"], processing_class=tokenizer
    )
    before = {k: v.clone() for k, v in trainer.model.projections.state_dict().items()}
    assert before, "a 16-wide student of a 32-wide teacher needs projections"
    trainer.train()
    after = trainer.model.projections.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the projections learned
    trainer.save_model(tmp_path / "student")
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student")
    assert saved.config.hidden_size == 16 and (tmp_path / "student" / "tokenizer.json").exists()
    assert (tmp_path / "out" / "intermediate").is_dir() and (tmp_path / "out" / "prediction").is_dir()


def test_layer_losses_work_without_any_capture_call(topic_run, files, tmp_path, monkeypatch):
    """The old internal Distiller needed capture.register() and capture.enable() first (an IndexError without)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distilkit import DistillationArguments, DistillationTrainer, build_student

    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path / "cache"))
    teacher = AutoModelForSequenceClassification.from_pretrained(topic_run / "model")
    tokenizer = AutoTokenizer.from_pretrained(topic_run / "model")
    data = own_datasets(tokenizer, teacher.config.label2id, *files)
    args = DistillationArguments(
        output_dir=str(tmp_path / "out"),
        losses={"kd": 1, "hidden_mse": 1, "attention_mse": 1},
        num_train_epochs=1,
        report_to="none",
        use_cpu=True,
        cache=False,
    )
    trainer = DistillationTrainer(
        model=build_student(teacher, "1"), teacher_model=teacher, args=args, train_dataset=data["train"]
    )
    output = trainer.train()
    assert np.isfinite(output.training_loss)


def test_a_list_of_teachers_is_multi_teacher_kd(topic_run, files, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distilkit import DistillationArguments, DistillationTrainer, build_student

    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path / "cache"))
    first = AutoModelForSequenceClassification.from_pretrained(topic_run / "model")
    second = AutoModelForSequenceClassification.from_pretrained(topic_run / "model")
    tokenizer = AutoTokenizer.from_pretrained(topic_run / "model")
    data = own_datasets(tokenizer, first.config.label2id, *files)
    args = DistillationArguments(
        output_dir=str(tmp_path / "out"),
        teacher_weights=[2, 1],
        num_train_epochs=1,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
    )
    trainer = DistillationTrainer(
        model=build_student(first, "1"), teacher_model=[first, second], args=args, train_dataset=data["train"]
    )
    assert len(trainer.teachers) == 2 and trainer.distillation.common["teacher_weights"] == [2.0, 1.0]
    assert np.isfinite(trainer.train().training_loss) and len(trainer.caches) == 2  # a cache per teacher


@pytest.mark.parametrize(
    "options, needle",
    [
        ({"temperature": 0}, "--temperature 0: must be a finite number > 0"),
        ({"alpha": 1.5}, "--alpha 1.5: must be a finite number in \\[0, 1\\]"),
        ({"method": "nope"}, "--method 'nope': choose one of kd, tinybert, distilbert, minilm"),
        ({"losses": "[kd]"}, "--losses '\\[kd\\]': give a mapping"),
    ],
)
def test_distillation_arguments_are_checked_like_the_cli(tmp_path, options, needle):
    from distilkit import DistillationArguments

    with pytest.raises(DistilkitError, match=needle):
        DistillationArguments(output_dir=str(tmp_path), report_to="none", **options)


def test_plain_training_arguments_are_refused_with_the_fix(topic_run):
    from transformers import AutoModelForSequenceClassification, TrainingArguments

    from distilkit import DistillationTrainer

    teacher = AutoModelForSequenceClassification.from_pretrained(topic_run / "model")
    with pytest.raises(TypeError, match="DistillationArguments"):
        DistillationTrainer(model=teacher, teacher_model=teacher, args=TrainingArguments(output_dir="x"))
