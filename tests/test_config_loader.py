"""The one loader of options read from YAML (distilkit.config_loader), through each of its three sources:
`--config` files, recipe sections and search's --base/--options/--space. A bad key, type, range or choice is one
error line naming the file (and the section); dashed keys are accepted everywhere."""

import subprocess
import sys
from typing import get_args

import pytest
import yaml
from conftest import run_cli

from distilkit.config import DistillConfig, FinetuneConfig, MethodName
from distilkit.config_loader import load_options
from distilkit.errors import DistilkitError
from distilkit.pipeline.options import SearchConfig
from distilkit.pipeline.run import _as_checked, changed_sections, load_recipe
from distilkit.pipeline.search import _base_options, parse_space


def error_line(args, capsys) -> str:
    """Run `distilkit args...`, which must fail with exit 2 and one error line; return that line."""
    code, _, err = run_cli(args, capsys)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("distilkit: error: "), err
    return lines[0]


# ---- --config --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, needle",
    [
        ("epochs: 2\nbatch_sise: 8\n", "unknown option 'batch_sise'; did you mean 'batch_size'?"),
        ("epochs: many\n", "--epochs 'many': must be a finite number > 0"),
        ("model: 3.5\n", "--model 3.5: must be a string (quote it in YAML)"),
        ("target_modules: query\n", "--target-modules 'query': must be a list of strings"),
        ("batch-size: 0\n", "--batch-size 0: must be an integer ≥ 1"),
        ("precision: fp8\n", "--precision 'fp8': must be one of auto, fp32, bf16, fp16"),
        ("peft: lorra\n", "--peft 'lorra': must be one of lora, prefix, prompt, ia3, adapter, bitfit"),
        ("- epochs\n", "must be a mapping of option: value, got list"),
    ],
)
def test_config_file_errors_name_the_file(tmp_path, capsys, content, needle):
    config = tmp_path / "c.yaml"
    config.write_text(content)
    line = error_line(["finetune", "--config", config, "--output", tmp_path / "out"], capsys)
    assert f"{config}" in line and needle in line, line
    assert not (tmp_path / "out").exists()


def test_config_file_takes_dashed_keys_and_numbers_written_as_text(tmp_path):
    from distilkit.cli import parse

    config = tmp_path / "c.yaml"
    config.write_text("batch-size: 8\nmax-length: 64\nlr: 1e-4\nfreeze-embeddings: yes\nmethod: tinybert\n")
    _, cfg, _ = parse(["distill", "--config", str(config)])
    assert (cfg.batch_size, cfg.max_length, cfg.lr, cfg.freeze_embeddings, cfg.method) == (
        8,
        64,
        1e-4,
        True,
        "tinybert",
    )


# ---- recipe sections -------------------------------------------------------------------------------------


def write_recipe(tmp_path, **changes):
    recipe = {
        "data": {"data": "x.csv", "max-length": 64},
        "teacher": {"model": "m", "lr": "1e-4"},
        "students": {"s": {"student": "1", "batch-size": 8}},
        **changes,
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize(
    "changes, needle",
    [
        (
            {"students": {"s": {"student": "1", "epocs": 2}}},
            "unknown key 'epocs' in students.s; did you mean 'epochs'?",
        ),
        ({"teacher": {"model": "m", "epochs": "two"}}, "teacher: --epochs 'two': must be a finite number > 0"),
        ({"students": {"s": {"student": 1.5}}}, "students.s: --student 1.5: must be a string (quote it in YAML)"),
        ({"prune": {"p": {"from": "s", "ffn": 1.0}}}, "prune.p: --ffn 1.0: must be a finite number in [0, 1)"),
        ({"students": {"s": {"method": "tinybrt"}}}, "students.s: --method 'tinybrt': must be one of kd, tinybert"),
        ({"bench": {"backend": "gpu"}}, "bench: --backend 'gpu': must be one of auto, torch, torch-bf16, onnx"),
        ({"quantize": {"calibration-samples": 0}}, "quantize: --calibration-samples 0: must be an integer ≥ 1"),
        ({"threads": 0}, "the recipe: --threads 0: must be an integer ≥ 1"),
        ({"students": ["s"]}, "the recipe: --students ['s']: must be a mapping"),
    ],
)
def test_recipe_errors_name_the_file_and_section(tmp_path, capsys, changes, needle):
    recipe = write_recipe(tmp_path, **changes)
    line = error_line(["run", recipe, "--output", tmp_path / "run"], capsys)
    assert line.startswith(f"distilkit: error: {recipe}: ") and needle in line, line
    assert not (tmp_path / "run").exists()


def test_recipe_sections_come_back_underscored_and_converted(tmp_path):
    recipe = load_recipe(str(write_recipe(tmp_path, prune={"p": {"from": "s", "heads": "0.3"}})))
    assert recipe["data"] == {"data": "x.csv", "max_length": 64}
    assert recipe["teacher"] == {"model": "m", "lr": 1e-4}  # YAML 1.1's text "1e-4" is the number
    assert recipe["students"]["s"] == {"student": "1", "batch_size": 8}
    assert recipe["prune"]["p"] == {"from": "s", "heads": "0.3"}  # `from` is the pipeline's, passed on as given


def test_a_resume_compares_the_saved_recipe_as_checked(tmp_path):
    """recipe.yaml of a run made before the loader holds the recipe as written (the text "1e-4", dashed keys)."""
    path = write_recipe(tmp_path)
    as_written = yaml.safe_load(path.read_text())

    def finished(section):
        return True

    assert changed_sections(as_written, load_recipe(str(path)), finished) == ["data", "teacher", "students.s"]
    assert changed_sections(_as_checked(as_written, "recipe.yaml"), load_recipe(str(path)), finished) == []


# ---- search --base / --options / --space ------------------------------------------------------------------


@pytest.mark.parametrize(
    "base, needle",
    [
        ("epocs: 3\n", "'epocs' is not an option of finetune; did you mean 'epochs'?"),
        ("warmup: lots\n", "--warmup 'lots': must be a finite number ≥ 0"),
        ("batch-size: 0\n", "--batch-size 0: must be an integer ≥ 1"),
        ("task: ner\n", "--task 'ner': must be one of auto, sequence-classification, token-classification"),
    ],
)
def test_search_base_errors_name_the_file(tmp_path, capsys, base, needle):
    path = tmp_path / "base.yaml"
    path.write_text(base)
    line = error_line(
        ["search", "--base", path, "--space", "{lr: [1.0e-5, 1.0e-3]}", "--output", tmp_path / "s"], capsys
    )
    assert f"{path}: " in line and needle in line, line
    assert not (tmp_path / "s").exists()


def test_search_options_and_space_errors_name_their_flag(tmp_path, capsys):
    for args, needle in [
        (["--options", "{peft: lorra}"], "--options: --peft 'lorra': must be one of lora"),
        (["--options", "{lr: 0}", "--command", "distill"], "--options: --lr 0: must be"),
        (["--space", "{epocs: [1, 2]}"], "--space: 'epocs' is not an option of finetune; did you mean"),
    ]:
        args = args if "--space" in args else [*args, "--space", "{epochs: [1, 2]}"]
        line = error_line(["search", *args, "--output", tmp_path / "s"], capsys)
        assert needle in line, line


def test_search_takes_dashed_keys_and_leaves_what_the_space_varies_to_the_trials(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("batch-size: 16\nlr: 0\nmax-length: 64\n")  # lr 0 is out of range, but every trial sets lr
    space = parse_space({"lr": [1e-5, 1e-3], "batch-size": {"choices": [8, 16]}}, FinetuneConfig, "finetune")
    assert set(space) == {"lr", "batch_size"}
    cfg = SearchConfig(base=str(base), options={"grad-accum": 2, "max_length": 32})
    assert _base_options(cfg, FinetuneConfig, space) == {"max_length": 32, "grad_accum": 2}


# ---- the loader itself, and the choice lists it checks against ---------------------------------------------


def test_load_options_drops_fields_the_caller_sets_and_passes_extra_keys():
    with pytest.raises(DistilkitError, match=r"^f\.yaml: unknown key 'teacher' in students\.a; "):
        load_options(DistillConfig, {"teacher": "t"}, "f.yaml", "students.a", drop=("teacher", "output"))
    assert load_options(FinetuneConfig, {"run": "x", "epochs": 2}, "f.yaml", "teacher", extra=("run",)) == {
        "run": "x",
        "epochs": 2,
    }
    with pytest.raises(DistilkitError, match="given twice"):
        load_options(FinetuneConfig, {"batch-size": 8, "batch_size": 8}, "f.yaml")


def test_choice_lists_are_the_registries_and_help_imports_no_torch():
    from distilkit.adapters import METHODS, get_method
    from distilkit.compress.options import QuantizeMethod
    from distilkit.config import PeftMethod
    from distilkit.distillation.methods import METHODS as DISTILL_METHODS
    from distilkit.pipeline.run import METHODS as PIPELINE_METHODS

    assert tuple(DISTILL_METHODS) == get_args(MethodName)
    get_method("lora")  # imports the modules that register every method
    assert set(METHODS) == set(get_args(PeftMethod))
    assert PIPELINE_METHODS == get_args(QuantizeMethod)
    probe = "import sys; from distilkit.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_a_number_where_text_is_expected_is_that_text():
    from distilkit.config import DistillConfig
    from distilkit.config_loader import load_options

    assert load_options(DistillConfig, {"student": 3}, "r.yaml", "students.s")["student"] == "3"


def test_the_old_name_of_method_says_the_new_one(tmp_path, capsys):
    code, _, err = run_cli(["distill", "--recipe", "tinybert"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--recipe is now --method" in err
    recipe = write_recipe(tmp_path, students={"s": {"student": "1", "recipe": "tinybert"}})
    code, _, err = run_cli(["run", recipe], capsys)
    assert code == 2 and err.count("\n") == 1 and "students.s: --recipe is now --method" in err
