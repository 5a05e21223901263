"""Model cards and `distilkit push`, on tiny models and without a network.

Every model folder a command writes has a README.md that huggingface_hub reads back with the right metadata
(base_model, license, pipeline_tag, tags, model-index equal to the command's own numbers) and passes its offline
checks; `push` sends exactly the model files (checked on the arguments of huggingface_hub's commit call, patched),
and refuses a folder that holds anything else. The base model is a "hub" model: the tiny BERT laid out in a
Hugging Face cache, as a download leaves it, with a card that gives its license.
"""

import json
import shutil

import pytest
from conftest import FAST, run_cli, topic_rows, write_csv

import distilkit
from distilkit.errors import DistilkitError
from distilkit.hub.cards import check_card, hub_dataset_id

HUB_ID = "acme/tiny-bert"


@pytest.fixture(scope="module")
def hub_model(tiny_model, tmp_path_factory):
    """The tiny BERT as the Hugging Face cache holds a downloaded `acme/tiny-bert` (MIT licensed, says its card)."""
    from huggingface_hub import ModelCard, ModelCardData, constants

    cache = tmp_path_factory.mktemp("hf-cache")
    repo = cache / "models--acme--tiny-bert"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_model, snapshot)
    ModelCard(f"---\n{ModelCardData(license='mit').to_yaml()}\n---\n\n# tiny\n").save(snapshot / "README.md")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HUB_CACHE", str(cache))
        yield HUB_ID


@pytest.fixture(scope="module")
def runs(hub_model, tmp_path_factory):
    """A teacher fine-tuned from the hub model, and a student distilled from it."""
    folder = tmp_path_factory.mktemp("cards")
    data = write_csv(folder / "topics.csv", topic_rows(120, seed=1))
    teacher, student = folder / "runs" / "teacher", folder / "runs" / "student"
    common = ["--data", data, "--epochs", "3", *FAST]
    assert run_cli(["finetune", "--model", hub_model, "--output", teacher, *common])[0] == 0
    assert run_cli(["distill", "--teacher", teacher, "--student", "1", "--output", student, "--force", *common])[0] == 0
    return {"data": data, "teacher": teacher, "student": student, "root": folder}


def metadata(folder):
    """The card of a model folder, checked as push checks it, and its metadata as a dict."""
    card = check_card(folder / "README.md")
    assert str(folder.parent.parent) not in card.content  # no machine paths
    return card, card.data.to_dict()


def first_score(data: dict) -> tuple[str, float]:
    metric = data["model-index"][0]["results"][0]["metrics"][0]
    return metric["type"], metric["value"]


def test_finetune_card(runs):
    card, data = metadata(runs["teacher"] / "model")
    metrics = json.loads((runs["teacher"] / "metrics.json").read_text())
    assert data["base_model"] == HUB_ID and data["license"] == "mit"  # the license carried over from its card
    assert data["pipeline_tag"] == "text-classification" and data["tags"] == ["distilkit"]
    assert first_score(data) == ("accuracy", metrics["test"]["accuracy"])
    assert data["model-index"][0]["results"][0]["dataset"]["split"] == "test"
    for part in ("## Model", "## How it was made", "## Lineage", "## Results", "## How to use", "## Limits"):
        assert part in card.text
    assert "distilkit finetune --model acme/tiny-bert" in card.text and "Parameters: " in card.text


def test_no_data_next_to_the_model(runs):
    for run in (runs["teacher"], runs["student"]):
        assert not (run / "data_sample").exists()


def test_distill_card(runs):
    card, data = metadata(runs["student"] / "model")
    metrics = json.loads((runs["student"] / "metrics.json").read_text())
    assert data["base_model"] == HUB_ID and data["license"] == "mit"  # the teacher's nearest Hub ancestor
    assert data["tags"] == ["distilkit", "knowledge-distillation"]
    assert first_score(data) == ("accuracy", metrics["test"]["student"]["accuracy"])
    assert "retention: " in card.text and "agreement with the teacher" in card.text
    assert "`teacher`: A text classification model fine-tuned from `acme/tiny-bert`" in card.text  # the lineage


def test_prune_card(runs, tmp_path):
    out = tmp_path / "pruned"
    assert run_cli(["prune", "--model", runs["teacher"], "--heads", "0.5", "--output", out])[0] == 0
    card, data = metadata(out / "model")
    metrics = json.loads((out / "metrics.json").read_text())
    assert data["base_model"] == HUB_ID and data["tags"] == ["distilkit", "pruned"]
    assert first_score(data) == ("accuracy", metrics["pruned"]["accuracy"])
    assert "trust_remote_code=True" in card.text  # its heads shrank: the loader code travels with it


def test_export_and_quantize_cards(runs, tmp_path):
    onnx, int8 = tmp_path / "onnx", tmp_path / "int8"
    assert run_cli(["export", "--model", runs["student"], "--output", onnx])[0] == 0
    assert run_cli(["quantize", "--model", onnx, "--output", int8])[0] == 0
    card, data = metadata(onnx)
    student = json.loads((runs["student"] / "metrics.json").read_text())
    assert data["tags"] == ["distilkit", "onnx"] and data["library_name"] == "onnx" and data["base_model"] == HUB_ID
    assert first_score(data) == ("accuracy", student["test"]["student"]["accuracy"])  # the same logits
    assert "onnxruntime" in card.text
    card, data = metadata(int8)
    report = json.loads((int8 / "quantize_report.json").read_text())
    assert data["tags"] == ["distilkit", "int8", "onnx"] and data["pipeline_tag"] == "text-classification"
    assert first_score(data) == ("accuracy", report["int8"])
    assert "/onnx`: " in card.text and "`student`: " in card.text  # the chain: export, then the student


def test_merge_card(runs, tmp_path):
    lora, merged = tmp_path / "lora", tmp_path / "merged"
    args = ["--model", HUB_ID, "--data", runs["data"], "--epochs", "1", "--peft", "lora", *FAST]
    assert run_cli(["finetune", *args, "--output", lora])[0] == 0
    _, data = metadata(lora / "model")
    assert data["library_name"] == "peft" and "lora" in data["tags"]
    assert run_cli(["merge", "--model", lora, "--output", merged])[0] == 0
    card, data = metadata(merged)
    metrics = json.loads((lora / "metrics.json").read_text())
    assert data["base_model"] == HUB_ID and data["tags"] == ["distilkit", "merged", "lora"]
    assert first_score(data) == ("accuracy", metrics["test"]["accuracy"])


def test_token_classification_card_of_a_local_model(ner_run):
    card, data = metadata(ner_run / "model")
    assert data["pipeline_tag"] == "token-classification" and "base_model" not in data  # a local folder
    assert "license" not in data and "token-classification" in card.text


def test_datasets_only_for_hub_dataset_ids(tmp_path):
    assert hub_dataset_id("stanfordnlp/sst2") == "stanfordnlp/sst2"
    assert hub_dataset_id("bbc-news") is None and hub_dataset_id("train.csv") is None
    assert hub_dataset_id(str(tmp_path)) is None and hub_dataset_id(None) is None


def test_a_card_the_hub_would_refuse_is_caught(tmp_path):
    (tmp_path / "README.md").write_text("---\nbase_model: not//a repo\n---\n\n# x\n")
    with pytest.raises(DistilkitError, match="base_model 'not//a repo' is not a Hub repo id"):
        check_card(tmp_path / "README.md")


def test_a_speed_section_is_added_once_and_only_to_distilkits_cards(runs, tmp_path):
    from distilkit.hub.speed import add_speed

    folder = tmp_path / "model"
    shutil.copytree(runs["student"] / "model", folder)
    result = {"batch_size": 8, "threads": 2, "rounds": 4, "inputs": "synthetic", "seq_len": 30}
    row = {"model": "s", "backend": "torch", "precision": "fp32", "speedup": 3.0, "peak_memory_mb": None}
    for latency in (5.0, 4.25):
        assert add_speed(
            folder, {**row, "latency_p50_ms": latency, "latency_p95_ms": 6, "throughput_per_s": 99}, result, "t"
        )
    text = check_card(folder / "README.md").text
    assert text.count("## Speed") == 1 and "4.25 ms median" in text and "5.00 ms" not in text
    assert "3.00x the batch-1 speed of `t`" in text and text.index("## Speed") < text.index("## How to use")
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# someone else's card\n")
    assert not add_speed(folder, {**row, "latency_p50_ms": 1, "latency_p95_ms": 1, "throughput_per_s": 1}, result, "t")
    assert "Speed" not in (folder / "README.md").read_text()


# ---- push ------------------------------------------------------------------------------------------------------


@pytest.fixture
def hub_calls(monkeypatch):
    """huggingface_hub's HfApi with its network calls recorded instead of made."""
    from huggingface_hub import HfApi

    calls = []

    def record(name):
        def call(self, *args, **kwargs):
            calls.append((name, args, kwargs))
            return type("Info", (), {"commit_url": "https://huggingface.co/acme/x/commit/1"})()

        return call

    for name in ("create_repo", "create_branch", "create_commit"):
        monkeypatch.setattr(HfApi, name, record(name))
    return calls


def sent_files(folder) -> list[str]:
    """What push sends of a model folder written by distilkit: all but the Trainer's pickled arguments."""
    return [p.name for p in folder.iterdir() if p.is_file() and p.name not in ("training_args.bin", ".distilkit")]


def sent(calls) -> dict:
    """The files of the recorded commit: path in the repo → what was sent (a path, or bytes)."""
    (commit,) = [kwargs for name, _, kwargs in calls if name == "create_commit"]
    return {op.path_in_repo: op.path_or_fileobj for op in commit["operations"]}


def test_push_a_run_sends_its_model_folder_only(runs, hub_calls, capsys):
    code, out, _ = run_cli(["push", runs["teacher"], "--repo-id", "acme/topic-teacher", "--private"], capsys)
    assert code == 0
    assert sorted(sent(hub_calls)) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert hub_calls[0] == ("create_repo", ("acme/topic-teacher",), {"private": True, "exist_ok": True})
    assert "training_args.bin (the Trainer's pickled arguments" in out
    assert "sending its model/ folder only; not sent: " in out and " config.yaml, " in out


def test_push_an_onnx_folder_with_a_branch(runs, hub_calls, capsys, tmp_path):
    onnx = tmp_path / "onnx"
    assert run_cli(["export", "--model", runs["student"], "--output", onnx])[0] == 0
    code, _, _ = run_cli(["push", "--model", onnx, "--repo-id", "acme/student-onnx", "--revision", "v1"], capsys)
    assert code == 0
    files = sent(hub_calls)
    expected = [
        "README.md",
        "config.json",
        "distilkit_onnx.json",
        "model.onnx",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert sorted(files) == expected
    assert json.loads(files["distilkit_onnx.json"])["source"] == "student/model"  # no machine path sent
    assert [name for name, *_ in hub_calls] == ["create_repo", "create_branch", "create_commit"]
    assert hub_calls[2][2]["revision"] == "v1"


def test_push_refuses_a_folder_with_data_in_it(runs, hub_calls, capsys, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(runs["teacher"] / "model", folder)
    (folder / "data_sample").mkdir()
    (folder / "data_sample" / "train.jsonl").write_text('{"text": "private", "label": "x"}\n')
    (folder / "notes.csv").write_text("a,b\n")
    code, _, err = run_cli(["push", folder, "--repo-id", "acme/x"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "not model files (data_sample/train.jsonl, notes.csv)" in err
    assert hub_calls == []


def test_push_dry_run_lists_the_files_and_sends_nothing(runs, hub_calls, capsys):
    code, out, _ = run_cli(["push", runs["student"], "--repo-id", "acme/student", "--dry-run"], capsys)
    assert code == 0 and hub_calls == []
    assert "would send 5 files" in out and "  model.safetensors  " in out
    result = distilkit.push(model=str(runs["student"]), repo_id="acme/student", dry_run=True)
    assert result["files"] == [
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert result["url"] is None


def test_push_bad_input_is_one_line(runs, hub_calls, capsys, tmp_path):
    code, _, err = run_cli(["push", runs["teacher"], "--repo-id", "not a repo"], capsys)
    assert code == 2 and "--repo-id 'not a repo': give the Hub repo as ORG/NAME" in err
    code, _, err = run_cli(["push", tmp_path / "nowhere", "--repo-id", "acme/x"], capsys)
    assert code == 2 and "no such folder" in err
    code, _, err = run_cli(["push", runs["root"], "--repo-id", "acme/x"], capsys)
    assert code == 2 and "not a model folder" in err
    assert hub_calls == []


def test_the_python_api_pushes_a_run_after_it_finishes(runs, hub_calls, tmp_path):
    result = distilkit.finetune(
        model=str(runs["teacher"]),
        data=str(runs["data"]),
        output=str(tmp_path / "again"),
        epochs=1,
        max_length=32,
        batch_size=16,
        push_to_hub="acme/topic-again",
    )
    assert hub_calls[0][1] == ("acme/topic-again",) and "model.safetensors" in sent(hub_calls)
    hub_calls.clear()
    assert result.push_to_hub("acme/other", dry_run=True)["files"] == sorted(sent_files(result.model))
    assert hub_calls == []
    with pytest.raises(DistilkitError, match="push_to_hub='not a repo'"):
        distilkit.finetune(model=str(runs["teacher"]), data=str(runs["data"]), push_to_hub="not a repo")
    assert not (tmp_path / "not").exists()
