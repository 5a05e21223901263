"""PEFT matrix: every method trains, saves the adapter alone, reloads onto a fresh base and predicts the same."""

import json
import types

import pytest
import torch
from conftest import FAST, topic_rows, write_csv

from distilkit import adapters
from distilkit.cli import main
from distilkit.errors import DistilkitError

METHODS = ["lora", "prefix", "prompt", "ia3", "adapter", "bitfit"]


def options(**overrides):
    base = dict(
        peft="lora",
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=None,
        virtual_tokens=4,
        adapter_size=8,
        adapter_placement="houlsby",
    )
    return types.SimpleNamespace(**{**base, **overrides})


def fresh_base(tiny_model, seed=0):
    from distilkit.models import load_model

    torch.manual_seed(seed)
    return load_model(str(tiny_model), "sequence-classification", ["food", "music", "sport"])


@pytest.mark.parametrize("method", METHODS)
def test_save_reload_gives_the_same_logits(tiny_model, tmp_path, method):
    model = adapters.apply(fresh_base(tiny_model), options(peft=method), "sequence-classification")
    trainable = [p for p in model.parameters() if p.requires_grad]
    total = sum(p.numel() for p in model.parameters())
    assert 0 < sum(p.numel() for p in trainable) < total  # only the method's parameters train
    with torch.no_grad():  # stand-in for training: move every trainable parameter
        for p in trainable:
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    batch = {
        "input_ids": torch.tensor([[2, 10, 11, 12, 3], [2, 20, 21, 3, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]),
    }
    expected = model(**batch).logits
    adapters.save_adapter(model, tmp_path / "a", method, str(tiny_model), "sequence-classification")
    size = sum(f.stat().st_size for f in (tmp_path / "a").iterdir())
    assert size < (tiny_model / "model.safetensors").stat().st_size  # the adapter alone is smaller than the base
    reloaded = adapters.load_adapter(fresh_base(tiny_model, seed=1), tmp_path / "a", method).eval()
    assert torch.allclose(reloaded(**batch).logits, expected, atol=1e-5)


@pytest.mark.parametrize("task", ["sequence-classification", "token-classification"])
def test_prefix_reaches_the_attention(tiny_model, task):
    """The learned prefix must change the outputs: transformers >= 5.24 calls the argument `cache`, and a
    prefix that is accepted but never attended would train nothing (see adapters.peft_methods)."""
    from distilkit.models import load_model

    torch.manual_seed(0)
    base = load_model(str(tiny_model), task, ["a", "b", "c"])
    model = adapters.apply(base, options(peft="prefix"), task).eval()
    batch = {"input_ids": torch.tensor([[2, 10, 11, 12, 3]]), "attention_mask": torch.ones(1, 5, dtype=torch.long)}
    with torch.no_grad():
        before = model(**batch).logits.clone()
        for p in model.prompt_encoder.parameters():
            p.add_(1.0)
        after = model(**batch).logits
    assert before.shape == after.shape
    assert not torch.allclose(before, after, atol=1e-4)


@pytest.mark.parametrize("method", ["lora", "bitfit", "adapter"])
def test_cli_finetune_evaluate_predict_with_peft(tiny_model, tmp_path, capsys, method):
    train = write_csv(tmp_path / "train.csv", topic_rows(90, seed=1))
    test = write_csv(tmp_path / "test.csv", topic_rows(30, seed=2))
    out = tmp_path / method
    main(
        [
            "finetune",
            "--model",
            str(tiny_model),
            "--train-file",
            str(train),
            "--test-file",
            str(test),
            "--output",
            str(out),
            "--epochs",
            "2",
            "--peft",
            method,
            *FAST,
        ]
    )
    stdout = capsys.readouterr().out
    assert f"{method}: " in stdout and "of the parameters train" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trainable_parameters"] < metrics["parameters"] and metrics["peft"] == method
    assert (out / "model" / "distilkit_adapter.json").exists() and not (out / "model" / "config.json").exists()
    main(["evaluate", "--model", str(out), "--data", str(test), "--json"])
    reloaded = json.loads(capsys.readouterr().out)
    assert reloaded["accuracy"] == pytest.approx(metrics["test"]["accuracy"])  # base + adapter = trained model
    main(["predict", "--model", str(out), "the band played a song"])
    assert json.loads(capsys.readouterr().out)["label"] in {"food", "music", "sport"}


def test_merge_lora_matches_base_plus_adapter(tiny_model, tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification

    from distilkit.inference.loading import load_trained

    model = adapters.apply(fresh_base(tiny_model), options(peft="lora"), "sequence-classification")
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    adapters.save_adapter(model, tmp_path / "lora", "lora", str(tiny_model), "sequence-classification")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path / "lora")
    main(["merge", "--model", str(tmp_path / "lora"), "--output", str(tmp_path / "merged")])
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    assert "lora" not in "".join(n for n, _ in merged.named_parameters())
    with_adapter = load_trained(str(tmp_path / "lora")).model
    batch = {"input_ids": torch.tensor([[2, 10, 11, 12, 3]]), "attention_mask": torch.ones(1, 5, dtype=torch.long)}
    diff = (merged(**batch).logits - with_adapter(**batch).logits).abs().max().item()
    assert diff < 1e-4
    assert merged.config.id2label == {0: "food", 1: "music", 2: "sport"}


# ---- bad input ----


def test_unknown_method_and_option(capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--peft", "lorax"])
    assert "--peft: Expected one of lora, prefix, prompt, ia3, adapter, bitfit" in capsys.readouterr().err
    with pytest.raises(DistilkitError, match="unknown PEFT method"):
        adapters.get_method("dora")


def test_lora_targets_absent_name_the_linear_modules(tiny_model):
    with pytest.raises(DistilkitError, match=r"no Linear module named 'q_proj'.*its Linear modules are: .*query"):
        adapters.apply(fresh_base(tiny_model), options(target_modules=["q_proj"]), "sequence-classification")


def test_merge_refuses_non_lora_adapters(tiny_model, tmp_path, capsys):
    model = adapters.apply(fresh_base(tiny_model), options(peft="prompt"), "sequence-classification")
    adapters.save_adapter(model, tmp_path / "p", "prompt", str(tiny_model), "sequence-classification")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path / "p")
    with pytest.raises(SystemExit):
        main(["merge", "--model", str(tmp_path / "p"), "--output", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert "a prompt adapter cannot be merged" in err and not (tmp_path / "m").exists()


@pytest.mark.parametrize("method,recipe", [("lora", "distilbert"), ("bitfit", "kd")])
def test_distill_into_a_pretrained_student_with_peft(
    topic_run, topic_data, tiny_model, tmp_path, capsys, monkeypatch, method, recipe
):
    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "peft-student"
    main(
        [
            "distill",
            "--teacher",
            str(topic_run),
            "--data",
            str(topic_data),
            "--student",
            str(tiny_model),
            "--method",
            recipe,
            "--peft",
            method,
            "--output",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "16",
        ]
    )
    assert (out / "model" / "distilkit_adapter.json").exists()
    capsys.readouterr()
    main(["predict", "--model", str(out), "the band played a song"])
    assert json.loads(capsys.readouterr().out)["label"] in {"food", "music", "sport"}


def test_distill_peft_needs_a_pretrained_student(topic_run, topic_data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "distill",
                "--teacher",
                str(topic_run),
                "--data",
                str(topic_data),
                "--student",
                "1",
                "--peft",
                "lora",
                "--output",
                str(tmp_path / "x"),
            ]
        )
    assert "needs a pretrained student" in capsys.readouterr().err
