"""The public Python surface: what `import distilkit` offers, one function per command (the CLI's options as keyword
arguments, results returned, errors raised), and that importing it is quick and quiet."""

import dataclasses
import inspect
import json
import subprocess
import sys

import pytest
from conftest import FAST, topic_rows, write_csv

import distilkit
from distilkit.cli import COMMAND_TABLE
from distilkit.errors import DistilkitError

# The public surface. Changing it is a decision: update this list (and the docs) on purpose.
PUBLIC = [
    "DistillationArguments",
    "DistillationTrainer",
    "DistilkitError",
    "RunResult",
    "SearchResult",
    "__version__",
    "augment",
    "bench",
    "build_student",
    "capture_attention",
    "distill",
    "evaluate",
    "export",
    "finetune",
    "merge",
    "predict",
    "prune",
    "push",
    "quantize",
    "recording",
    "report",
    "run",
    "search",
    "serve",
]


def test_the_public_surface_is_what_it_was_decided_to_be():
    assert sorted(distilkit.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        value = getattr(distilkit, name)
        assert name == "__version__" or value.__doc__, f"distilkit.{name} has no docstring"
    assert (distilkit.__path__[0] + "/py.typed") and __import__("pathlib").Path(
        distilkit.__path__[0], "py.typed"
    ).exists()


def test_every_command_is_a_function_with_the_clis_options():
    from distilkit.api import COMMAND_FUNCTIONS

    assert set(COMMAND_FUNCTIONS) == set(COMMAND_TABLE)
    for name, command in COMMAND_TABLE.items():
        function = getattr(distilkit, name)
        assert function is COMMAND_FUNCTIONS[name] and callable(function)
        parameters = inspect.signature(function).parameters
        pushed = ["push_to_hub"] if name in distilkit.api.PUSHED else []  # the API's own keyword: push when done
        assert list(parameters) == [f.name for f in dataclasses.fields(command.config)] + pushed, name
        for field in dataclasses.fields(command.config):
            if field.default is not dataclasses.MISSING:
                assert parameters[field.name].default == field.default, (name, field.name)


def test_the_functions_win_over_subpackages_of_the_same_name():
    import distilkit.distillation.trainer  # noqa: F401 - a submodule import must not shadow distilkit.distill
    import distilkit.evaluation.bench  # noqa: F401
    import distilkit.serving.app  # noqa: F401

    assert callable(distilkit.distill) and callable(distilkit.evaluate) and callable(distilkit.serve)


def test_import_is_quick_and_quiet_and_loads_no_torch():
    code = "import sys, time; t = time.perf_counter(); import distilkit; "
    code += "print(time.perf_counter() - t, 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, torch_loaded = done.stdout.split()
    assert float(seconds) < 0.5 and torch_loaded == "False" and done.stderr == ""
    code = "from distilkit import DistillationTrainer, DistillationArguments"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "" and done.stderr == "", done.stderr  # no torchao or torch import-time lines


@pytest.mark.parametrize(
    "call, needle",
    [
        (
            lambda: distilkit.finetune(learning_rates=1e-3),  # learning_rate itself is an alias of lr
            "unexpected keyword argument 'learning_rates'; did you mean 'lr'?",
        ),
        (
            lambda: distilkit.distill(temprature=2),
            "unexpected keyword argument 'temprature'; did you mean 'temperature'?",
        ),
        (lambda: distilkit.predict(model="x", text="hello"), "did you mean 'texts'?"),
    ],
)
def test_a_wrong_keyword_is_a_type_error_naming_the_right_one(call, needle):
    with pytest.raises(TypeError, match=needle):
        call()


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda: distilkit.finetune(batch_size=0), "--batch-size 0: must be an integer ≥ 1"),
        (lambda: distilkit.finetune(freeze_embeddings="yes"), "--freeze-embeddings 'yes': expected true or false"),
        (lambda: distilkit.distill(method="nope"), "--method 'nope': expected one of kd, tinybert, distilbert, minilm"),
        (lambda: distilkit.predict(model="no/such/model/folder", texts=["x"]), "not found"),
        (lambda: distilkit.finetune(data=42), "data=int: give a file or folder path"),
    ],
)
def test_bad_values_raise_the_clis_message_instead_of_exiting(call, needle):
    with pytest.raises(DistilkitError, match=needle):
        call()


def test_results_are_returned_not_printed(topic_run, topic_data, tmp_path, capsys):
    capsys.readouterr()
    predictions = distilkit.predict(model=topic_run, texts=["the band played a song", "goal match team"])
    assert [p["label"] for p in predictions] == ["music", "sport"]
    metrics = distilkit.evaluate(model=topic_run, data=topic_data)
    assert 0 <= metrics["accuracy"] <= 1 and metrics["examples"] > 0
    onnx = distilkit.export(model=topic_run, output=tmp_path / "onnx")
    assert (onnx / "model.onnx").is_file()
    out = capsys.readouterr().out
    assert "music" not in out and "accuracy" not in out and "exported" not in out


def test_a_loaded_model_is_taken_where_a_folder_is(topic_run, topic_data, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    folder = topic_run / "model"
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts = ["the band played a song", "goal match team"]
    from_folder = distilkit.predict(model=topic_run, texts=texts)
    for given in [(model, tokenizer), pipeline("text-classification", model=model, tokenizer=tokenizer), model]:
        assert distilkit.predict(model=given, texts=texts) == from_folder
    assert distilkit.evaluate(model=(model, tokenizer), data=topic_data)["accuracy"] == pytest.approx(
        distilkit.evaluate(model=topic_run, data=topic_data)["accuracy"]
    )
    table = distilkit.bench(
        models=[topic_run, (model, tokenizer)], batch_size=2, seq_len=16, rounds=2, warmup=1, memory=False
    )
    assert len(table["models"]) == 2
    student = distilkit.distill(
        teacher=(model, tokenizer), data=topic_data, student="1", output=tmp_path / "s", **_fast()
    )
    recorded = (tmp_path / "s" / "config.yaml").read_text()
    assert "teacher: in-memory BertForSequenceClassification" in recorded and student.model.is_dir()
    import tempfile
    from pathlib import Path

    assert not list(Path(tempfile.gettempdir()).glob("distilkit-models-*"))  # the temporary copies are gone


def test_a_model_without_its_tokenizer_is_one_clear_error(topic_run):
    from transformers import BertConfig, BertForSequenceClassification

    tiny = BertConfig(vocab_size=99, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    bare = BertForSequenceClassification(tiny)  # built in memory: no folder, so no tokenizer beside it
    with pytest.raises(DistilkitError, match=r"model=BertForSequenceClassification: the model alone has no tokenizer"):
        distilkit.predict(model=bare, texts=["a"])


def test_finetune_takes_a_dataset_in_memory_and_returns_its_run(tiny_model, tmp_path, capsys):
    from datasets import Dataset

    rows = topic_rows(120, seed=3)
    csv_run = distilkit.finetune(
        model=tiny_model, data=write_csv(tmp_path / "t.csv", rows), output=tmp_path / "csv", epochs=3, **_fast()
    )
    memory_run = distilkit.finetune(
        model=tiny_model, data=Dataset.from_list(rows), output=tmp_path / "m", epochs=3, **_fast()
    )
    assert isinstance(memory_run, distilkit.RunResult) and memory_run.model.is_dir()
    assert memory_run.metrics["test"]["accuracy"] == csv_run.metrics["test"]["accuracy"]
    recorded = (tmp_path / "m" / "config.yaml").read_text()
    assert "in-memory Dataset (120 rows" in recorded  # described in config.yaml, not dumped
    listed = distilkit.finetune(model=tiny_model, data=rows, output=tmp_path / "rows", epochs=3, **_fast())
    assert listed.metrics["test"]["accuracy"] == csv_run.metrics["test"]["accuracy"]
    assert json.loads((tmp_path / "m" / "metrics.json").read_text()) == memory_run.metrics


def _fast() -> dict:
    values = dict(zip(FAST[::2], FAST[1::2]))
    return {
        k.removeprefix("--").replace("-", "_"): float(v) if "." in v or "e" in v else int(v) for k, v in values.items()
    }
