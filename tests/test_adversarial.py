"""FGM / PGD: embeddings are restored after each step, the perturbation changes training, frozen embeddings refused."""

import json

import pytest
import torch
from conftest import FAST, topic_rows, write_csv
from safetensors.torch import load_file

from distilkit.cli import main


def finetune(tiny_model, tmp_path, name, *extra):
    data = write_csv(tmp_path / "t.csv", topic_rows(48))
    out = tmp_path / name
    main(
        [
            "finetune",
            "--model",
            str(tiny_model),
            "--data",
            str(data),
            "--output",
            str(out),
            "--epochs",
            "1",
            "--dropout",
            "0",
            *FAST,
            *extra,
        ]
    )
    return load_file(out / "model" / "model.safetensors")


@pytest.mark.parametrize("method", ["fgm", "pgd"])
def test_perturbation_is_undone_and_changes_training(tiny_model, tmp_path, method):
    base = load_file(tiny_model / "model.safetensors")
    emb_key = next(k for k in base if "word_embeddings" in k)
    # with a learning rate too small to move a float32 weight (--lr must be > 0), nothing may move: the perturbed
    # embeddings must have been restored after every step
    frozen = finetune(
        tiny_model, tmp_path, f"{method}-lr0", "--adversarial", method, "--lr", "1e-30", "--weight-decay", "0"
    )
    assert torch.equal(frozen["bert." + emb_key.removeprefix("bert.")], base[emb_key])
    plain = finetune(tiny_model, tmp_path, "plain")
    adv = finetune(tiny_model, tmp_path, method, "--adversarial", method, "--adversarial-epsilon", "0.5")
    key = next(k for k in plain if "layer.1.output.dense.weight" in k)
    assert not torch.allclose(plain[key], adv[key])  # the adversarial gradients changed the update


def test_adversarial_needs_trainable_embeddings(tiny_model, tmp_path, capsys):
    with pytest.raises(SystemExit):
        finetune(tiny_model, tmp_path, "bad", "--adversarial", "fgm", "--freeze-embeddings")
    err = capsys.readouterr().err
    assert "embeddings" in err and "frozen" in err and not (tmp_path / "bad").exists()


def test_distill_with_fgm(topic_run, topic_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "d"
    main(
        [
            "distill",
            "--teacher",
            str(topic_run),
            "--data",
            str(topic_data),
            "--student",
            "1",
            "--output",
            str(out),
            "--epochs",
            "1",
            "--adversarial",
            "fgm",
            "--batch-size",
            "16",
        ]
    )
    assert json.loads((out / "metrics.json").read_text())["test"]["agreement"] >= 0.8  # chance is ~1/3
