"""`distilkit distill` and `distilkit augment` end to end on tiny models, and their bad-input errors."""

import json
import re
import shutil

import pytest
from conftest import ner_sentences, run_cli, topic_rows, write_conll, write_csv

BAR = re.compile(r"^[\w ]+:\s+\d+%\|")  # a tqdm progress line ("tokenizing:  50%|█████     | 96/192 ...")
QUICK = ["--batch-size", "16", "--warmup", "0", "--logging-steps", "5", "--eval-batch-size", "64"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path_factory.getbasetemp() / "teacher-cache"))


def test_kd_student_from_teacher_layers_agrees_with_teacher(topic_run, topic_data, tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "kd"
    code, stdout, _ = run_cli(
        [
            "distill",
            "--teacher",
            topic_run,
            "--data",
            topic_data,
            "--student",
            "1",
            "--method",
            "kd",
            "--output",
            out,
            "--epochs",
            "4",
            "--lr",
            "3e-3",
            *QUICK,
        ],
        capsys,
    )
    assert code == 0, stdout
    assert "student: teacher layers [0]" in stdout and "stages: prediction: 0.5·ce + 0.5·kd" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["agreement"] >= 0.9  # chance is ~1/3
    assert metrics["test"]["retention"] >= 0.9
    student = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert student.config.num_hidden_layers == 1
    assert student.config.id2label == {0: "food", 1: "music", 2: "sport"}
    # a second run with the same teacher and data reuses the cache
    code, stdout, _ = run_cli(
        [
            "distill",
            "--teacher",
            topic_run,
            "--data",
            topic_data,
            "--student",
            "1",
            "--output",
            tmp_path / "kd2",
            "--epochs",
            "1",
            *QUICK,
        ],
        capsys,
    )
    assert code == 0 and "teacher cache: reusing" in stdout


def test_tinybert_two_stages_with_projection(topic_run, topic_data, tmp_path, capsys):
    from safetensors.torch import load_file

    out = tmp_path / "tiny"
    code, stdout, _ = run_cli(
        [
            "distill",
            "--teacher",
            topic_run,
            "--data",
            topic_data,
            "--student",
            "2L-16H-2A-32F",
            "--method",
            "tinybert",
            "--intermediate-epochs",
            "3",
            "--epochs",
            "6",
            "--lr",
            "5e-3",
            "--alpha",
            "0.5",
            "--output",
            out,
            *QUICK,
        ],
        capsys,
    )
    assert code == 0
    assert "stage 1/2: intermediate" in stdout and "stage 2/2: prediction" in stdout
    stage2 = stdout[stdout.index("stage 1/2") :]
    assert "teacher cache: reusing" in stage2  # one cache serves both stages
    assert "hidden states (student←teacher): 0←0, 1←1, 2←2" in stdout
    weights = load_file(out / "model" / "model.safetensors")
    assert not any("projection" in k for k in weights)  # projections are dropped when saving
    assert weights["bert.embeddings.word_embeddings.weight"].shape[1] == 16
    assert "distilkit" not in (out / "model" / "config.json").read_text()  # loads without distilkit's attention
    metrics = json.loads((out / "metrics.json").read_text())
    assert [s["name"] for s in metrics["stages"]] == ["intermediate", "prediction"]
    assert "MSE layer losses: raw" in stdout and metrics["normalize_losses"] is False  # tinybert: the paper's MSE
    assert "attention_mse compares pre-softmax scores" in stdout and metrics["attention_probabilities"] is False
    logs = list((out / "logs" / "intermediate").glob("events*"))
    assert logs


def test_minilm_relations_with_other_head_count(topic_run, topic_data, tmp_path, capsys):
    out = tmp_path / "minilm"
    code, stdout, err = run_cli(
        [
            "distill",
            "--teacher",
            topic_run,
            "--data",
            topic_data,
            "--student",
            "1L-24H-3A-48F",
            "--method",
            "minilm",
            "--relation-heads",
            "4",
            "--output",
            out,
            "--epochs",
            "2",
            *QUICK,
        ],
        capsys,
    )
    assert code == 0, err
    assert "1·minilm_relations" in stdout


def test_token_classification_distillation(tiny_model, tmp_path, capsys):
    from conftest import FAST

    data = write_conll(tmp_path / "ner.conll", ner_sentences(200, seed=3))
    teacher = tmp_path / "ner-teacher"
    assert (
        run_cli(
            ["finetune", "--model", tiny_model, "--data", data, "--output", teacher, "--epochs", "8", *FAST], capsys
        )[0]
        == 0
    )
    out = tmp_path / "ner-student"
    code, _, err = run_cli(
        [
            "distill",
            "--teacher",
            teacher,
            "--data",
            data,
            "--student",
            "1",
            "--method",
            "distilbert",
            "--layer-map",
            "0:0,1:2",
            "--output",
            out,
            "--epochs",
            "4",
            "--lr",
            "3e-3",
            *QUICK,
        ],
        capsys,
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["metric"] == "f1"
    assert metrics["test"]["student"]["entity"]["f1"] >= 0.8 and metrics["test"]["agreement"] >= 0.9
    code, stdout, _ = run_cli(["predict", "--model", out, "dave visited paris"], capsys)
    assert json.loads(stdout)["tags"] == ["B-PER", "O", "B-LOC"]


def test_multi_teacher_and_custom_losses(topic_run, topic_data, tmp_path, capsys):
    out = tmp_path / "multi"
    code, stdout, err = run_cli(
        [
            "distill",
            "--teacher",
            f"{topic_run},{topic_run / 'model'}",
            "--teacher-weights",
            "0.7,0.3",
            "--data",
            topic_data,
            "--student",
            "1",
            "--losses",
            "{kd: 1.0, hidden_mse: 0.5, attention_mse: 1}",
            "--layer-map",
            "1:2",
            "--output",
            out,
            "--epochs",
            "2",
            *QUICK,
        ],
        capsys,
    )
    assert code == 0, err
    assert "(+1 more)" in stdout and "1·kd + 0.5·hidden_mse + 1·attention_mse" in stdout
    assert "MSE layer losses: relative" in stdout  # custom combinations: comparable scales by default
    assert "attention_mse compares softmax probabilities (raw MSE)" in stdout  # single-stage methods' default
    assert "layer map: explicit: hidden states (student←teacher): 1←2" in stdout


def test_augment_inline_and_cli(topic_run, topic_data, tmp_path, capsys):
    out = tmp_path / "aug"
    code, stdout, _ = run_cli(
        [
            "distill",
            "--teacher",
            topic_run,
            "--data",
            topic_data,
            "--student",
            "1",
            "--augment",
            "2",
            "--output",
            out,
            "--epochs",
            "1",
            *QUICK,
        ],
        capsys,
    )
    assert code == 0 and "augmentation: 192 → 576 training examples" in stdout
    assert json.loads((out / "metrics.json").read_text())["train"]["examples"] == 576
    src = write_csv(tmp_path / "in.csv", topic_rows(10))
    code, _, _ = run_cli(
        ["augment", "--data", src, "--output", tmp_path / "out.csv", "--model", topic_run, "--copies", "3"], capsys
    )
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert code == 0 and lines[0] == "text,label" and len(lines) == 1 + 40
    code, _, err = run_cli(["augment", "--data", src, "--output", tmp_path / "out.csv", "--model", topic_run], capsys)
    assert code == 2 and "--overwrite" in err


def test_general_distillation_on_raw_text(tiny_model, tmp_path, capsys):
    from transformers import AutoModel

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(r["text"] for r in topic_rows(64)) + "\n")
    out = tmp_path / "general"
    code, stdout, err = run_cli(
        [
            "distill",
            "--general",
            "--teacher",
            tiny_model,
            "--data",
            corpus,
            "--student",
            "1",
            "--output",
            out,
            "--epochs",
            "1",
            *QUICK,
        ],
        capsys,
    )
    assert code == 0, err
    assert "general: 1·embedding_mse + 1·hidden_mse + 1·attention_mse" in stdout
    assert AutoModel.from_pretrained(out / "model").config.num_hidden_layers == 1


# ---- bad input: one clear line, no run folder left ----


def _no_run(path):
    return not path.exists() and not list(path.parent.glob(f".{path.name}*"))


def test_untrained_teacher_is_refused_unless_forced(tiny_model, topic_data, tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    raw = tmp_path / "raw-teacher"
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model,
        num_labels=3,
        id2label={0: "food", 1: "music", 2: "sport"},
        label2id={"food": 0, "music": 1, "sport": 2},
    )
    model.save_pretrained(raw)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(raw)
    out = tmp_path / "refused"
    argv = ["distill", "--teacher", raw, "--data", topic_data, "--output", out, "--augment", "2", *QUICK]
    code, stdout, err = run_cli(argv, capsys)
    # the check runs the teacher on tokenized examples, so the tokenizing bar may come first: the rest is one line
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and not BAR.match(line)]
    assert code == 2 and len(lines) == 1 and "looks untrained" in lines[0] and "--force" in lines[0], err
    assert "augmentation" not in stdout  # refused before the data is augmented (minutes on a large set)
    assert _no_run(out)
    code, stdout, _ = run_cli(
        ["distill", "--teacher", raw, "--data", topic_data, "--output", out, "--force", "--epochs", "1", *QUICK], capsys
    )
    assert code == 0 and "WARNING" in stdout and "warning" in json.loads((out / "metrics.json").read_text())


def test_tokenizer_mismatch(topic_run, topic_data, tiny_model, tmp_path, capsys):
    from transformers import AutoModel, BertTokenizerFast

    other = tmp_path / "other-student"
    shutil.copytree(tiny_model, other)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(200)]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(other)
    AutoModel.from_pretrained(tiny_model)  # the weights stay; only the tokenizer differs
    out = tmp_path / "mismatch"
    code, _, err = run_cli(
        ["distill", "--teacher", topic_run, "--data", topic_data, "--student", other, "--output", out, *QUICK], capsys
    )
    assert code == 2 and "tokenizer differs" in err and _no_run(out)
    code, _, err = run_cli(
        [
            "distill",
            "--teacher",
            topic_run,
            "--data",
            topic_data,
            "--student",
            other,
            "--method",
            "tinybert",
            "--separate-tokenization",
            "--output",
            out,
            *QUICK,
        ],
        capsys,
    )
    assert code == 2 and "only for logit KD" in err
    code, stdout, err = run_cli(
        [
            "distill",
            "--teacher",
            topic_run,
            "--data",
            topic_data,
            "--student",
            other,
            "--separate-tokenization",
            "--output",
            out,
            "--epochs",
            "1",
            *QUICK,
        ],
        capsys,
    )
    assert code == 0, err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--student", "1L-32H-4A-64F", "--method", "tinybert"], "student has 4 heads and the teacher 2; "),
        (["--student", "1", "--layer-map", "1:5", "--method", "tinybert"], "out of range"),
        (["--student", "1", "--losses", "{kd: 1, hiden_mse: 1}"], "unknown loss 'hiden_mse'"),
        (["--student", "layers:0,7"], "teacher layers are 0..1"),
        (["--method", "kd", "--alpha", "1.5"], "--alpha 1.5"),
    ],
)
def test_bad_distill_options(topic_run, topic_data, tmp_path, capsys, args, message):
    out = tmp_path / "bad"
    code, _, err = run_cli(
        ["distill", "--teacher", topic_run, "--data", topic_data, "--output", out, *args, *QUICK], capsys
    )
    assert code == 2 and message in err and err.count("\n") == 1
    assert _no_run(out)


def test_teachers_with_different_labels(topic_run, topic_data, tmp_path, capsys):
    other = tmp_path / "other-teacher"
    shutil.copytree(topic_run / "model", other)
    config = json.loads((other / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "b", "2": "c"}
    config["label2id"] = {"a": 0, "b": 1, "c": 2}
    (other / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli(
        ["distill", "--teacher", f"{topic_run},{other}", "--data", topic_data, "--output", tmp_path / "x", *QUICK],
        capsys,
    )
    assert code == 2 and "teachers disagree" in err


def test_general_student_then_task_distillation(tiny_model, topic_run, topic_data, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(r["text"] for r in topic_rows(64, seed=5)) + "\n")
    general = tmp_path / "general-2L"
    code, _, err = run_cli(
        [
            "distill",
            "--general",
            "--teacher",
            tiny_model,
            "--data",
            corpus,
            "--student",
            "2L-16H-2A-32F",
            "--output",
            general,
            "--epochs",
            "1",
            *QUICK,
        ],
        capsys,
    )
    assert code == 0, err
    code, stdout, err = run_cli(
        [
            "distill",
            "--teacher",
            topic_run,
            "--data",
            topic_data,
            "--student",
            general,
            "--output",
            tmp_path / "task",
            "--epochs",
            "1",
            *QUICK,
        ],
        capsys,
    )
    assert code == 0, err
    assert f"student: pretrained {general}" in stdout


def test_interrupted_two_stage_run_resumes(topic_run, topic_data, tmp_path, capsys, monkeypatch):
    from distilkit import runs

    out = tmp_path / "resume"
    args = [
        "distill",
        "--teacher",
        topic_run,
        "--data",
        topic_data,
        "--student",
        "1",
        "--method",
        "tinybert",
        "--intermediate-epochs",
        "1",
        "--epochs",
        "1",
        "--output",
        out,
        *QUICK,
    ]

    def crash(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs.RunFolder, "finish", crash)
    code, _, _ = run_cli(args, capsys)
    assert code == 130 and (tmp_path / ".resume.partial" / "stage-intermediate.safetensors").exists()
    monkeypatch.undo()
    code, stdout, _ = run_cli(args + ["--resume"], capsys)
    assert code == 0 and "stage intermediate: already done" in stdout and (out / "metrics.json").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--teacher-weights", "1,2"], "--teacher-weights '1,2': give 1 non-negative numbers"),
        (["--method", "tinybert", "--separate-tokenization"], None),
    ],
)
def test_more_bad_options(topic_run, topic_data, tmp_path, capsys, args, message):
    code, stdout, err = run_cli(
        [
            "distill",
            "--teacher",
            topic_run,
            "--data",
            topic_data,
            "--output",
            tmp_path / "o",
            "--epochs",
            "1",
            *args,
            *QUICK,
        ],
        capsys,
    )
    if message:
        assert code == 2 and message in err
    else:  # same tokenizer: the flag is allowed and unused
        assert code == 0, err


def test_general_distillation_with_an_mlm_head(tiny_model, tmp_path, capsys):
    from transformers import AutoModelForMaskedLM, AutoTokenizer, BertConfig, BertForMaskedLM

    teacher = tmp_path / "mlm-teacher"
    BertForMaskedLM(BertConfig.from_pretrained(tiny_model)).save_pretrained(teacher)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(teacher)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(r["text"] for r in topic_rows(32)) + "\n")
    out = tmp_path / "general-mlm"
    code, stdout, err = run_cli(
        [
            "distill",
            "--general",
            "--teacher",
            teacher,
            "--data",
            corpus,
            "--student",
            "1",
            "--output",
            out,
            "--epochs",
            "1",
            *QUICK,
        ],
        capsys,
    )
    assert code == 0, err
    assert "1·attention_mse + 1·kd" in stdout  # MLM logits distilled per token
    assert AutoModelForMaskedLM.from_pretrained(out / "model").config.num_hidden_layers == 1
