"""Unlabeled transfer sets (`distill --unlabeled`): reading them, leaving them out of the label loss, and the
student they give on tiny models."""

import json

import pytest
import torch
from conftest import FAST, ner_sentences, run_cli, topic_rows, write_conll, write_csv, write_jsonl
from torch import nn

from distilkit.distillation.distiller import labelled_loss

QUICK = ["--batch-size", "16", "--warmup", "0", "--logging-steps", "5", "--eval-batch-size", "64"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path_factory.getbasetemp() / "teacher-cache"))


@pytest.fixture(scope="module")
def confident_teacher(tiny_model, tmp_path_factory):
    """A topic teacher with clear margins (the shared one's logits are nearly uniform): KD alone can teach."""
    folder = tmp_path_factory.mktemp("confident")
    data = write_csv(folder / "topics.csv", topic_rows(240, seed=1))
    out = folder / "teacher"
    args = ["finetune", "--model", tiny_model, "--data", data, "--output", out, "--epochs", "10", *FAST]
    assert run_cli([a if a != "1e-3" else "5e-3" for a in args])[0] == 0
    return out, data


def test_labelled_loss_counts_every_example_and_skips_unlabeled_rows():
    torch.manual_seed(0)
    logits, labels = torch.randn(4, 3), torch.tensor([2, 0, 1, 1])
    labeled = torch.tensor([True, False, True, False])
    every = nn.functional.cross_entropy(logits, labels, reduction="none")
    assert torch.allclose(labelled_loss(logits, labels, labeled, False), (every[0] + every[2]) / 4)
    assert torch.allclose(labelled_loss(logits, labels, torch.ones(4, dtype=torch.bool), False), every.mean())
    assert labelled_loss(logits, labels, torch.zeros(4, dtype=torch.bool), False) is None
    # regression: squared error of the labelled rows over all rows
    values, targets = torch.randn(4, 1), torch.randn(4)
    expected = ((values.squeeze(-1) - targets) ** 2)[labeled].sum() / 4
    assert torch.allclose(labelled_loss(values, targets, labeled, True), expected)
    # tokens: per labelled word-piece, over every counted piece (placeholders of unlabeled rows included)
    token_logits = torch.randn(2, 5, 3)
    token_labels = torch.tensor([[-100, 1, 2, -100, -100], [-100, 0, 0, 0, -100]])
    pieces = nn.functional.cross_entropy(token_logits[0, 1:3], token_labels[0, 1:3], reduction="sum")
    got = labelled_loss(token_logits, token_labels, torch.tensor([True, False]), False)
    assert torch.allclose(got, pieces / 5)


def test_distiller_leaves_unlabeled_rows_out_of_ce(tiny_model, tmp_path):
    """compute_loss on one batch: CE reads only the labelled rows (a placeholder label would change it); KD
    reads every row; a batch with no labelled row has no CE term."""
    from transformers import AutoModelForSequenceClassification, TrainingArguments

    from distilkit.distillation.distiller import Distiller, LossPlan
    from distilkit.distillation.layer_map import build_layer_map

    student = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=3)
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=3)
    plan = LossPlan(weights={"ce": 0.5, "kd": 0.5}, layer_map=build_layer_map("uniform", 2, 2))
    args = TrainingArguments(str(tmp_path), report_to=[], use_cpu=True)
    distiller = Distiller(model=student, args=args, plan=plan, teachers=[teacher])
    batch = {
        "input_ids": torch.tensor([[2, 5, 6, 3], [2, 7, 8, 3]]),
        "attention_mask": torch.ones(2, 4, dtype=torch.long),
        "labels": torch.tensor([1, 0]),
        "labeled": torch.tensor([1, 0]),
    }
    student.eval()  # no dropout: the same logits in every call
    with torch.no_grad():
        logits = student(input_ids=batch["input_ids"]).logits
    distiller.compute_loss(student, batch)
    ce = nn.functional.cross_entropy(logits[:1], torch.tensor([1])) / 2
    assert distiller._parts["ce"][-1] == pytest.approx(float(ce), rel=1e-4)
    distiller.compute_loss(student, {**batch, "labels": torch.tensor([1, 2])})  # the unlabeled row's placeholder
    assert distiller._parts["ce"][-1] == pytest.approx(float(ce), rel=1e-4)
    distiller._parts.clear()
    distiller.compute_loss(student, {**batch, "labeled": torch.tensor([0, 0])})
    assert "ce" not in distiller._parts and len(distiller._parts["kd"]) == 1


def test_transfer_set_teaches_a_student_with_few_labels(confident_teacher, tmp_path, capsys):
    teacher, data = confident_teacher
    raw = tmp_path / "raw.txt"
    raw.write_text("\n".join(r["text"] for r in topic_rows(200, seed=7)) + "\n\n")  # blank lines are skipped
    common = ["--teacher", teacher, "--data", data, "--student", "1L-32H-2A-64F", "--max-train-samples", "6"]
    common += ["--temperature", "1", "--epochs", "8", "--lr", "1e-2", *QUICK]
    code, _, err = run_cli(["distill", *common, "--output", tmp_path / "few"], capsys)
    assert code == 0, err
    code, stdout, err = run_cli(["distill", *common, "--unlabeled", raw, "--output", tmp_path / "transfer"], capsys)
    assert code == 0, err
    assert "transfer set: 200 unlabeled examples from" in stdout and "next to 6 labelled ones" in stdout
    few = json.loads((tmp_path / "few" / "metrics.json").read_text())
    transfer = json.loads((tmp_path / "transfer" / "metrics.json").read_text())
    assert transfer["train"]["examples"] == 206 and transfer["train"]["unlabeled_examples"] == 200
    assert few["train"]["unlabeled_examples"] == 0
    assert transfer["test"]["agreement"] >= few["test"]["agreement"] + 0.15, (few["test"], transfer["test"])


def test_transfer_set_ratio_augmentation_and_label_column_ignored(topic_run, topic_data, tmp_path, capsys):
    rows = [{"text": r["text"], "label": "not-a-known-label"} for r in topic_rows(50, seed=9)]
    unlabeled = write_jsonl(tmp_path / "raw.jsonl", rows)
    out = tmp_path / "ratio"
    args = ["distill", "--teacher", topic_run, "--data", topic_data, "--student", "1", "--max-train-samples", "20"]
    args += ["--unlabeled", unlabeled, "--unlabeled-ratio", "1.5", "--augment", "1", "--epochs", "1", *QUICK]
    code, stdout, err = run_cli([*args, "--output", out], capsys)
    assert code == 0, err
    assert "transfer set: 30 unlabeled examples" in stdout
    assert "augmentation: 20 → 40 training examples" in stdout and "augmentation: 30 → 60 unlabeled examples" in stdout
    assert json.loads((out / "metrics.json").read_text())["train"]["examples"] == 100


def test_transfer_set_for_token_classification(ner_run, tmp_path, capsys):
    data = write_conll(tmp_path / "ner.conll", ner_sentences(80, seed=4))
    raw = tmp_path / "raw.txt"  # raw text: words split on whitespace
    raw.write_text("\n".join(" ".join(tokens) for tokens, _ in ner_sentences(40, seed=5)) + "\n")
    out = tmp_path / "ner-transfer"
    args = ["distill", "--teacher", ner_run, "--data", data, "--student", "1", "--method", "tinybert"]
    args += ["--unlabeled", raw, "--epochs", "2", "--output", out, *QUICK]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    assert "transfer set: 40 unlabeled examples" in stdout
    assert json.loads((out / "metrics.json").read_text())["train"]["unlabeled_examples"] == 40


@pytest.mark.parametrize(
    "content, extra, message",
    [
        (None, [], "--unlabeled {path}: no such file or folder"),
        ("words\n", ["--general"], "--unlabeled is for task distillation"),
        ('{"sentence": "a b"}\n', [], "no column 'text'; columns found: sentence"),
        ("", [], "data file is empty"),
    ],
)
def test_transfer_set_bad_input(topic_run, topic_data, tmp_path, capsys, content, extra, message):
    path = tmp_path / ("raw.jsonl" if content and content.startswith("{") else "raw.txt")
    if content is not None:
        path.write_text(content)
    out = tmp_path / "bad"
    teacher = topic_run if "--general" not in extra else topic_run / "model"
    args = ["distill", "--teacher", teacher, "--data", topic_data, "--unlabeled", path, "--output", out, *extra]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and message.format(path=path) in err and err.count("\n") == 1, err
    assert not out.exists()


def test_pair_data_needs_pair_transfer_texts(tiny_model, tmp_path, capsys):
    rows = [{"text_a": r["text"], "text_b": r["text"], "label": r["label"]} for r in topic_rows(60)]
    data = write_csv(tmp_path / "pairs.csv", rows)
    teacher = tmp_path / "pair-teacher"
    assert run_cli(["finetune", "--model", tiny_model, "--data", data, "--output", teacher, "--epochs", "1"])[0] == 0
    raw = tmp_path / "raw.txt"
    raw.write_text("just one text\n")
    out = tmp_path / "bad"
    args = ["distill", "--teacher", teacher, "--data", data, "--unlabeled", raw, "--output", out]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "the labelled data are text pairs" in err and not out.exists()


def test_augmentation_candidates_from_another_models_mlm_head(topic_run, topic_data, tiny_model, tmp_path, capsys):
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    mlm = tmp_path / "mlm"
    BertForMaskedLM(BertConfig.from_pretrained(tiny_model)).save_pretrained(mlm)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(mlm)
    args = ["distill", "--teacher", topic_run, "--data", topic_data, "--student", "1", "--max-train-samples", "10"]
    args += ["--augment", "1", "--epochs", "1", *QUICK]
    code, stdout, err = run_cli([*args, "--augment-model", mlm, "--output", tmp_path / "a"], capsys)
    assert code == 0 and f"augmentation candidates: masked-LM predictions of {mlm}" in stdout, err
    code, stdout, err = run_cli([*args, "--output", tmp_path / "b"], capsys)
    assert code == 0 and "augmentation candidates: embedding neighbours of the teacher" in stdout, err
    code, _, err = run_cli([*args, "--augment-model", tmp_path / "nothing", "--output", tmp_path / "c"], capsys)
    assert code == 2 and "nothing" in err and not (tmp_path / "c").exists()
