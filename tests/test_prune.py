"""Pruning: removal equals gating off, importance finds dead heads, saved folders load, recovery, bad specs."""

import copy
import json

import pytest
import torch
from conftest import FAST, build_tiny_model, run_cli, topic_rows, write_csv

from distilkit.compress import pruning
from distilkit.inference.loading import load_trained

BATCH = {
    "input_ids": torch.tensor([[2, 10, 11, 12, 13, 3], [2, 20, 21, 3, 0, 0]]),
    "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]),
}


@pytest.fixture(scope="module")
def four_head_run(tmp_path_factory):
    """A tiny fine-tuned BERT with 4 heads of size 8 per layer (the shared tiny model has only 2)."""
    folder = tmp_path_factory.mktemp("prune")
    model = build_tiny_model(folder / "bert4", heads=4)
    data = write_csv(folder / "topics.csv", topic_rows(240, seed=5))
    out = folder / "run"
    code, _, _ = run_cli(["finetune", "--model", model, "--data", data, "--output", out, "--epochs", "6", *FAST])
    assert code == 0
    return out


def logits_with_gates(model, heads_off: dict, neurons_off: dict):
    """Reference: the unpruned model with some heads' outputs / FFN units multiplied by zero."""
    paths, d = pruning.paths_for(model), pruning.head_size(model)
    hooks = []
    for i, layer in enumerate(pruning.encoder_layer_list(model, paths)):

        def zero_heads(module, args, off=heads_off.get(i, [])):
            x = args[0].clone().view(*args[0].shape[:-1], -1, d)
            x[..., off, :] = 0
            return (x.view_as(args[0]),)

        def zero_units(module, args, off=neurons_off.get(i, [])):
            x = args[0].clone()
            x[..., off] = 0
            return (x,)

        hooks.append(pruning.get_module(layer, paths["out"]).register_forward_pre_hook(zero_heads))
        hooks.append(pruning.get_module(layer, paths["ffn_out"]).register_forward_pre_hook(zero_units))
    with torch.no_grad():
        out = model(**BATCH).logits
    for h in hooks:
        h.remove()
    return out


def test_removing_heads_and_neurons_equals_gating_them_off(four_head_run):
    model = load_trained(str(four_head_run)).model
    heads_off, neurons_off = {0: [1], 1: [0, 2, 3]}, {0: [0, 5, 9], 1: [63]}
    expected = logits_with_gates(model, heads_off, neurons_off)
    pruned = copy.deepcopy(model)
    pruning.remove_heads(pruned, [heads_off[0], heads_off[1]])
    pruning.remove_neurons(pruned, [neurons_off[0], neurons_off[1]])
    assert pruning.shape_summary(pruned)["attention_heads"] == [3, 1]
    assert pruning.shape_summary(pruned)["intermediate_sizes"] == [61, 63]
    with torch.no_grad():
        got = pruned(**BATCH).logits
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, model(**BATCH).logits.detach(), atol=1e-3)  # it did change something


def test_importance_ranks_a_dead_head_lowest(four_head_run):
    model = load_trained(str(four_head_run)).model
    layer0 = pruning.encoder_layer_list(model, pruning.paths_for(model))[0]
    with torch.no_grad():  # head 2 of layer 0 now contributes nothing: its gate gradient is exactly 0
        layer0.attention.output.dense.weight[:, 16:24] = 0
    batch = {**BATCH, "labels": torch.tensor([0, 1])}
    heads, neurons = pruning.score_importance(model, [batch, batch], heads=True, neurons=True)
    assert heads[0][2] == 0 and all(heads[0][h] > 0 for h in (0, 1, 3))
    assert len(neurons) == 2 and neurons[0].shape == (64,)
    assert pruning.choose_lowest(heads, 1 / 8, "global", "heads") == [[2], []]


def test_prune_cli_writes_a_loadable_smaller_model(four_head_run, tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "pruned"
    code, stdout, err = run_cli(
        ["prune", "--model", four_head_run, "--heads", "0.25", "--ffn", "0.25", "--budget", "layer", "--output", out],
        capsys,
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pruned"]["attention_heads"] == [3, 3] and metrics["pruned"]["intermediate_sizes"] == [48, 48]
    assert metrics["pruned"]["parameters"] < metrics["before"]["parameters"]
    assert 0.6 < metrics["macs_ratio"] < 0.8 and "accuracy" in metrics["pruned"]
    ours = load_trained(str(out)).model
    plain = AutoModelForSequenceClassification.from_pretrained(out / "model", trust_remote_code=True)
    with torch.no_grad():
        assert torch.allclose(ours(**BATCH).logits, plain(**BATCH).logits, atol=1e-6)
    assert "heads per layer: [4, 4] → [3, 3]" in stdout
    code, _, err = run_cli(["export", "--model", out], capsys)  # a pruned model exports with parity too
    assert code == 0, err
    assert json.loads((out / "onnx" / "distilkit_onnx.json").read_text())["parity"]["max_abs_logit_diff"] <= 1e-4


def test_unstructured_sparsity_is_permanent_and_reported(four_head_run, tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "sparse"
    code, stdout, err = run_cli(["prune", "--model", four_head_run, "--sparsity", "0.5", "--output", out], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pruned"]["encoder_linear_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert "save no time" in stdout
    model = AutoModelForSequenceClassification.from_pretrained(out / "model")  # no custom code needed
    assert "distilkit_pruning" not in model.config.to_dict()
    zeros = sum(int((m.weight == 0).sum()) for _, m in pruning.encoder_linears(model))
    assert zeros == metrics["pruned"]["zero_weights"]


@pytest.mark.parametrize("method", ["finetune", "distill"])
def test_recovery_keeps_the_pruned_shapes(four_head_run, tmp_path, capsys, method):
    out = tmp_path / method
    code, stdout, err = run_cli(
        [
            "prune",
            "--model",
            four_head_run,
            "--heads",
            "0:2,1:1",
            "--sparsity",
            "0.3",
            "--recover",
            method,
            "--recover-epochs",
            "1",
            "--recover-lr",
            "1e-3",
            "--output",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recovery"]["method"] == method and "accuracy" in metrics["recovered"]
    model = load_trained(str(out)).model
    assert pruning.shape_summary(model)["attention_heads"] == [2, 3]
    assert pruning.sparsity_report(model)["encoder_linear_sparsity"] >= 0.29  # zeros re-applied after training
    assert f"after {method} recovery" in stdout


@pytest.mark.parametrize(
    "heads, message",
    [
        ("0:5", "layer 0 has only 4 heads, cannot remove 5"),
        ("1:4", "removing all 4 heads of layer 1"),
        ("1.0", "1 would remove every head"),
        ("7:1", "layer 7 does not exist"),
        ("half", "give a fraction like 0.3"),
    ],
)
def test_impossible_head_requests_fail_before_writing(four_head_run, tmp_path, capsys, heads, message):
    out = tmp_path / "bad"
    code, _, err = run_cli(["prune", "--model", four_head_run, "--heads", heads, "--output", out], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / ".bad.partial").exists()


def test_layer_budget_that_empties_a_layer_is_refused(four_head_run, tmp_path, capsys):
    code, _, err = run_cli(
        ["prune", "--model", four_head_run, "--heads", "0.9", "--budget", "layer", "--output", tmp_path / "bad"], capsys
    )
    assert code == 2 and "would remove all of them" in err and not (tmp_path / "bad").exists()
