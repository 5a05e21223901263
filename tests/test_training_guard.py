"""No garbage model is saved as a success, and a user's loss that breaks its contract is one line, not a crash.

Training stops at the first non-finite loss (naming the loss part and the step) or gradient (naming the
parameter); a model with NaN weights is never saved nor served; a registered loss must return a finite scalar
tensor on the graph, and one that raises is named with the place it raised. Every case ends in one
`distilkit: error:` line, exit 2, and no `.partial` folder.
"""

import json
import shutil

import pytest
from conftest import FAST, run_cli, topic_rows, write_csv
from test_reliability import final_error_line, leftovers, one_error_line

PLUGIN = """
import torch
from distilkit.losses import register_loss

@register_loss("guard_nan", reads={"logits"})
def guard_nan(batch):
    return batch.student_logits.float().sum() * float("nan")

@register_loss("guard_inf", reads={"logits"})
def guard_inf(batch):
    return batch.student_logits.float().sum() * 0 + float("inf")

@register_loss("guard_wide", reads={"logits"})
def guard_wide(batch):
    return batch.student_logits.float()

@register_loss("guard_float", reads={"logits"})
def guard_float(batch):
    return 0.5

@register_loss("guard_raises", reads={"logits"})
def guard_raises(batch):
    raise ValueError("the user's bug")

@register_loss("guard_constant", reads={"logits"})
def guard_constant(batch):
    return torch.tensor(1.0)

@register_loss("guard_nan_gradient", reads={"logits"})
def guard_nan_gradient(batch):  # finite (0), but d sqrt(x)/dx at 0 is infinite: NaN gradients
    x = batch.student_logits.float()
    return torch.sqrt(((x - x.detach()) ** 2).sum())

@register_loss("guard_one_element", reads={"logits"})
def guard_one_element(batch):  # shape [1] is one number too: accepted
    return batch.student_logits.float().pow(2).mean().reshape(1)
"""


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin") / "guard_losses.py"
    path.write_text(PLUGIN)
    return path


def distil_with(loss, plugin, topic_run, topic_data, out, capsys, extra=()):
    args = ["distill", "--teacher", topic_run, "--data", topic_data, "--student", "1", "--plugins", plugin]
    args += ["--losses", f"{{kd: 1, {loss}: 1}}", "--epochs", "1", "--output", out, *FAST, *extra]
    return run_cli(args, capsys)


@pytest.mark.parametrize(
    "loss, needles",
    [
        ("guard_nan", ["loss 'guard_nan' (guard_losses.py:", "is nan at step 1", "nothing was saved"]),
        ("guard_inf", ["loss 'guard_inf'", "is inf at step 1"]),
        ("guard_wide", ["loss 'guard_wide'", "returned a tensor of shape [16, 3]", ".mean()"]),
        ("guard_float", ["loss 'guard_float'", "returned float 0.5, not a tensor"]),
        ("guard_raises", ["loss 'guard_raises'", "raised ValueError: the user's bug", "guard_losses.py:", "step 1"]),
        ("guard_constant", ["loss 'guard_constant'", "without gradients"]),
        ("guard_nan_gradient", ["the gradient of student.", "is not finite", "at step 1", "your own loss"]),
    ],
)
def test_a_plugin_loss_that_breaks_its_contract_is_one_line_and_nothing_is_kept(
    loss, needles, plugin, topic_run, topic_data, tmp_path, capsys
):
    code, _, err = distil_with(loss, plugin, topic_run, topic_data, tmp_path / "d", capsys)
    final_error_line(code, err, *needles)  # after the training bar, a line of its own
    assert leftovers(tmp_path) == [] and not (tmp_path / "d").exists()


def test_a_one_element_loss_trains(plugin, topic_run, topic_data, tmp_path, capsys):
    code, out, err = distil_with("guard_one_element", plugin, topic_run, topic_data, tmp_path / "d", capsys)
    assert code == 0, err
    assert "loss_guard_one_element" in out and (tmp_path / "d" / "model" / "model.safetensors").is_file()


def test_a_diverging_finetune_stops_at_the_first_nan_loss(tiny_model, tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", topic_rows(60))
    args = ["finetune", "--model", tiny_model, "--data", data, "--output", tmp_path / "r", "--epochs", "2"]
    code, _, err = run_cli([*args, "--lr", "1e6", "--batch-size", "16", "--warmup", "0"], capsys)
    final_error_line(code, err, "distilkit: error: the training loss is nan at step ", "try a lower --lr")
    assert leftovers(tmp_path) == [] and not (tmp_path / "r").exists()


def test_max_grad_norm_0_disables_clipping_instead_of_crashing(tiny_model, tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", topic_rows(30))
    args = ["finetune", "--model", tiny_model, "--data", data, "--output", tmp_path / "r", "--epochs", "1", *FAST]
    code, _, err = run_cli([*args, "--max-grad-norm", "0"], capsys)
    assert code == 0, err


@pytest.fixture
def nan_model(topic_run, tmp_path):
    """A copy of the topic run whose weights are all NaN (as the unguarded distiller used to save them)."""
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "nan"
    shutil.copytree(topic_run / "model", copy)
    weights = load_file(str(copy / "model.safetensors"))
    save_file({k: v * float("nan") for k, v in weights.items()}, str(copy / "model.safetensors"), {"format": "pt"})
    return copy


@pytest.mark.parametrize("command", ["predict", "evaluate", "serve"])
def test_a_model_with_nan_weights_is_refused_in_one_line(nan_model, topic_data, capsys, command):
    args = {
        "predict": ["predict", "--model", nan_model, "the band played a song"],
        "evaluate": ["evaluate", "--model", nan_model, "--data", topic_data],
        "serve": ["serve", nan_model, "--port", "0"],
    }[command]
    code, out, err = run_cli(args, capsys)
    one_error_line(code, err, "weights are NaN or infinite", "the model is broken")
    assert "NaN" not in out


def test_a_graph_that_gives_nan_is_refused_by_predict(topic_run, tmp_path, capsys, monkeypatch):
    """An ONNX graph cannot be checked weight by weight: its NaN scores are refused where they come out."""
    import numpy as np

    from distilkit.inference import onnx_model

    out = tmp_path / "onnx"
    assert run_cli(["export", "--model", topic_run, "--output", out], capsys)[0] == 0
    monkeypatch.setattr(onnx_model.OnnxClassifier, "logits", lambda self, batch: np.full((1, 3), np.nan, np.float32))
    code, stdout, err = run_cli(["predict", "--model", out, "the band played a song"], capsys)
    one_error_line(code, err, "the model gave NaN or infinite scores")
    assert stdout == ""


def test_metrics_with_nan_are_written_as_valid_json(tmp_path):
    from distilkit.files import write_json

    write_json(tmp_path / "m.json", {"pearson": float("nan"), "mse": float("inf"), "ok": [1.5, float("-inf")]})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in {text}")) == {
        "pearson": None,
        "mse": None,
        "ok": [1.5, None],
    }
