"""Model folders distilkit cannot use are refused on load, in one line naming the file and the value; an ONNX
folder must match itself; the default --max-length fits the model.

- config.json sizes no model can have (vocab_size 0, num_hidden_layers 0, max_position_embeddings 0, ...) and a
  head without labels; pickled weights that hold more than tensors (never unpickled: one line, not a traceback);
- an ONNX graph whose inputs, outputs or logits do not match its folder's metadata (a model.onnx copied from
  another model), and texts longer than the positions the graph was exported with;
- with a model of fewer than 128 positions every command reads what the model takes, and says so; an explicit
  --max-length beyond the model stays an error.
"""

import json
import shutil

import pytest
import torch
from conftest import FAST, build_tiny_model, run_cli, topic_rows, write_csv
from test_reliability import one_error_line


def edited_copy(run, tmp_path, name, **config):
    folder = tmp_path / name
    shutil.copytree(run / "model", folder)
    values = json.loads((folder / "config.json").read_text())
    values.update(config)
    (folder / "config.json").write_text(json.dumps(values))
    return folder


@pytest.mark.parametrize(
    "config, needle",
    [
        ({"vocab_size": 0}, "vocab_size is 0, but it must be an integer ≥ 1"),
        ({"num_hidden_layers": 0}, "num_hidden_layers is 0"),
        ({"max_position_embeddings": 0}, "max_position_embeddings is 0"),
        ({"hidden_size": -32}, "hidden_size is -32"),
        ({"num_attention_heads": "two"}, "num_attention_heads is 'two'"),
        ({"num_labels": 0, "id2label": {}, "label2id": {}}, "num_labels is 0 (id2label is empty)"),
    ],
)
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_config_with_impossible_values_is_one_line(topic_run, topic_data, tmp_path, capsys, config, needle, command):
    folder = edited_copy(topic_run, tmp_path, "bad", **config)
    args = ["predict", "--model", folder, "hello"] if command == "predict" else ["evaluate", "--model", folder]
    code, out, err = run_cli(args + ([] if command == "predict" else ["--data", topic_data]), capsys)
    one_error_line(code, err, f"{folder / 'config.json'}: ", needle)
    assert out == ""


def test_a_base_model_with_impossible_values_is_refused_before_training(tiny_model, tmp_path, capsys):
    folder = tmp_path / "base"
    shutil.copytree(tiny_model, folder)
    values = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**values, "vocab_size": 0}))
    data = write_csv(tmp_path / "t.csv", topic_rows(30))
    code, _, err = run_cli(["finetune", "--model", folder, "--data", data, "--output", tmp_path / "r", *FAST], capsys)
    one_error_line(code, err, "vocab_size is 0")
    assert not (tmp_path / "r").exists()


class Gadget:
    """What a hostile pickle carries: unpickling it would call print (or anything else)."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickled_weights_with_code_are_refused_in_one_line(topic_run, tmp_path, capsys):
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(topic_run / "model", folder)
    weights = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save({**weights, "gadget": Gadget()}, folder / "pytorch_model.bin")
    code, out, err = run_cli(["predict", "--model", folder, "hello"], capsys)
    one_error_line(code, err, f"{folder / 'pytorch_model.bin'}: refused", "never runs code from model files")
    assert "unpickled!" not in out + err


def test_pickled_weights_of_plain_tensors_still_load(topic_run, tmp_path, capsys):
    from safetensors.torch import load_file

    folder = tmp_path / "plain-pickle"
    shutil.copytree(topic_run / "model", folder)
    weights = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(weights, folder / "pytorch_model.bin")  # torch.load(weights_only=True) reads these
    code, out, err = run_cli(["predict", "--model", folder, "the band played a song"], capsys)
    assert code == 0 and json.loads(out)["label"], err


# ---- ONNX folders that do not match themselves ---------------------------------------------------------------


@pytest.fixture(scope="module")
def two_label_onnx(tiny_model, tmp_path_factory):
    """An exported model with 2 labels: its graph is the foreign one copied into a 3-label folder."""
    folder = tmp_path_factory.mktemp("two")
    rows = [r for r in topic_rows(60) if r["label"] != "food"]
    data = write_csv(folder / "two.csv", rows)
    run = folder / "run"
    assert run_cli(["finetune", "--model", tiny_model, "--data", data, "--output", run, "--epochs", "1", *FAST])[0] == 0
    assert run_cli(["export", "--model", run, "--output", folder / "onnx"])[0] == 0
    return folder / "onnx"


@pytest.fixture(scope="module")
def topic_onnx(topic_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("topic-onnx") / "onnx"
    assert run_cli(["export", "--model", topic_run, "--output", out])[0] == 0
    return out


def test_an_onnx_graph_from_another_model_is_refused(topic_onnx, two_label_onnx, tmp_path, capsys):
    folder = tmp_path / "mixed"
    shutil.copytree(topic_onnx, folder)
    shutil.copy(two_label_onnx / "model.onnx", folder / "model.onnx")
    for args in (["predict", "--model", folder, "hello"], ["serve", folder, "--port", "0"]):
        code, out, err = run_cli(args, capsys)
        one_error_line(code, err, "the graph does not match its folder", "2 logits per row", "has 3 labels")
        assert out == ""


def test_an_onnx_graph_with_other_outputs_is_refused(topic_onnx, tmp_path, capsys):
    import onnx

    folder = tmp_path / "two-outputs"
    shutil.copytree(topic_onnx, folder)
    graph = onnx.load(str(folder / "model.onnx"))
    graph.graph.output.append(graph.graph.output[0])  # a second output, as a multi-head model would have
    onnx.save(graph, str(folder / "model.onnx"))
    code, _, err = run_cli(["predict", "--model", folder, "hello"], capsys)
    one_error_line(code, err, "2 outputs, where an exported classifier has one")


# ---- --max-length: the default fits the model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """A model of 64 positions, fine-tuned and exported without --max-length."""
    folder = tmp_path_factory.mktemp("short")
    model = build_tiny_model(folder / "bert64", positions=64)
    data = write_csv(folder / "t.csv", topic_rows(60))
    code, out, _ = run_cli(["finetune", "--model", model, "--data", data, "--output", folder / "run", *FAST])
    assert code == 0
    assert run_cli(["export", "--model", folder / "run", "--output", folder / "onnx"])[0] == 0
    return folder


def test_a_model_of_64_positions_works_without_max_length(short_run, capsys):
    long_text = " ".join(["the band played a song"] * 40)  # ~200 tokens
    for model in (short_run / "run", short_run / "onnx"):
        code, out, err = run_cli(["predict", "--model", model, long_text], capsys)
        assert code == 0, err
        assert json.loads(out)["truncated"] is True
        assert "max length: 64 tokens" in err
    config = json.loads((short_run / "onnx" / "distilkit_onnx.json").read_text())
    assert config["max_length"] == 64


def test_a_model_of_64_positions_refuses_an_explicit_longer_max_length(short_run, capsys):
    for model in (short_run / "run", short_run / "onnx"):
        code, _, err = run_cli(["predict", "--model", model, "--max-length", "128", "hello"], capsys)
        one_error_line(code, err, "--max-length 128", "reads at most 64 tokens", "--max-length 64 or less")


def test_bench_fits_its_texts_and_refuses_synthetic_inputs_longer_than_a_model(short_run, topic_data, capsys):
    args = ["bench", short_run / "run", "--rounds", "1", "--warmup", "0", "--memory", "false"]
    code, _, err = run_cli([*args, "--seq-len", "128"], capsys)
    one_error_line(code, err, "--seq-len 128", "reads at most 64 tokens", "--seq-len 64 or less")
    code, _, err = run_cli([*args, "--data", topic_data], capsys)  # real texts: cut at the model's 64 positions
    assert code == 0, err


def test_the_server_truncates_to_the_models_positions(short_run):
    from fastapi.testclient import TestClient

    from distilkit.serving.app import create_app
    from distilkit.serving.options import ServeConfig

    long_text = " ".join(["the band played a song"] * 40)
    app = create_app(ServeConfig(model=str(short_run / "onnx")))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/predict", json={"texts": [long_text]})
        assert response.status_code == 200, response.text
        assert response.json()["predictions"][0]["truncated"] is True
        assert client.get("/metadata").json()["max_length"] == 64
