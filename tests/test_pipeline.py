"""`distilkit run` end to end on a tiny recipe, resume by skipping, the report (rendered in Chromium), bench,
recipe validation, and the shipped recipes."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_cli, topic_rows, write_csv

from distilkit.cli import parse
from distilkit.errors import DistilkitError
from distilkit.hub.cards import check_card
from distilkit.pipeline.run import Pipeline, changed_sections, load_recipe

RECIPES = Path(__file__).parent.parent / "recipes"


def tiny_recipe(tmp_path, tiny_model, **changes) -> Path:
    data = write_csv(tmp_path / "topics.csv", topic_rows(240, seed=1))
    recipe = {
        "name": "tiny",
        "output": str(tmp_path / "run"),
        "data": {"data": str(data), "max_length": 32},
        "teacher": {"model": str(tiny_model), "epochs": 8, "lr": 1e-3, "batch_size": 16, "warmup": 0},
        "students": {"s1": {"student": "1", "method": "kd", "epochs": 6, "lr": 1e-3, "batch_size": 16, "warmup": 0}},
        "quantize": {"models": ["teacher", "s1"], "methods": ["dynamic"]},
        "bench": {"rounds": 4, "warmup": 1, "memory": False, "batch_size": 8},
        "report": {"min_retention": 0.9},
        **changes,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    recipe = tiny_recipe(tmp, tiny_model)
    code, _, _ = run_cli(["run", recipe])
    assert code == 0
    return recipe, tmp / "run"


def test_pipeline_writes_every_stage(tiny_pipeline):
    _, run = tiny_pipeline
    names = ["teacher", "s1", "teacher int8-dynamic", "s1 int8-dynamic"]
    for name in names:
        evaluation = json.loads((run / "eval" / f"{name}.json").read_text())
        assert evaluation["split"] == "test" and 0 <= evaluation["accuracy"] <= 1
    # the pipeline's evaluation of the student is the distill run's own test score (same split, same model)
    s1 = json.loads((run / "students" / "s1" / "metrics.json").read_text())["test"]["student"]["accuracy"]
    assert json.loads((run / "eval" / "s1.json").read_text())["accuracy"] == pytest.approx(s1, abs=1e-6)
    bench = json.loads((run / "bench.json").read_text())
    assert [m["model"] for m in bench["models"]] == names
    assert bench["models"][0]["speedup"] == 1.0
    assert bench["models"][1]["gflops_per_example"] < bench["models"][0]["gflops_per_example"]  # 1 layer of 2
    assert json.loads((run / "eval" / "teacher.json").read_text())["accuracy"] >= 0.8
    folders = [run / "teacher" / "model", run / "students" / "s1" / "model", run / "int8" / "teacher-dynamic"]
    for row, folder in zip(bench["models"], folders + [run / "int8" / "s1-dynamic"]):  # bench's numbers in each card
        text = check_card(folder / "README.md").text
        assert f"Batch-1 latency: {row['latency_p50_ms']:.2f} ms median" in text
        assert text.index("## Speed") < text.index("## How to use")
    md = (run / "report.md").read_text()
    assert "| teacher |" in md and ("Ship **" in md or "No model keeps" in md)
    paired = json.loads((run / "eval" / "s1.json").read_text())["paired"]  # the student vs the teacher, same examples
    teacher_score = json.loads((run / "eval" / "teacher.json").read_text())["accuracy"]
    assert paired["difference"] == pytest.approx(s1 - teacher_score, abs=1e-6) and paired["test"] == "McNemar exact"
    low, high = json.loads((run / "eval" / "teacher.json").read_text())["intervals"]["accuracy"]
    assert f"| teacher | {teacher_score:.4f} [{low:.3f}, {high:.3f}] |" in md
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3  # pareto, size/speed, training curves (+ confusion)
    stages = json.loads((run / "stages.json").read_text())
    assert list(stages) == ["teacher", "distill", "prune", "export", "evaluate", "bench", "report"]


def test_rerun_skips_finished_stages(tiny_pipeline, capsys):
    recipe, run = tiny_pipeline
    before = (run / "teacher" / "model" / "model.safetensors").stat().st_mtime
    code, out, err = run_cli(["run", recipe], capsys)
    assert code == 0, err
    assert (run / "teacher" / "model" / "model.safetensors").stat().st_mtime == before
    assert "[1/7] teacher done in 0 s" in out and "[2/7] distill done in 0 s" in out
    assert "| s1 int8-dynamic |" in out  # the final table


def test_rerun_with_a_changed_recipe_refuses(tiny_pipeline, tmp_path, capsys):
    recipe, run = tiny_pipeline
    changed = yaml.safe_load(recipe.read_text())
    changed["students"]["s1"]["epochs"] = 1
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(changed))
    code, _, err = run_cli(["run", str(path)], capsys)
    assert code == 2 and "students.s1 changed since" in err and "--overwrite" in err
    assert yaml.safe_load((run / "recipe.yaml").read_text())["students"]["s1"]["epochs"] == 6  # untouched


def test_report_never_writes_into_a_users_folder(tiny_pipeline, tmp_path, capsys):
    _, run = tiny_pipeline
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my own report")
    code, _, err = run_cli(["report", run, "--output", mine], capsys)
    assert code == 2 and "was not written by distilkit" in err and err.count("\n") == 1, err
    assert (
        sorted(p.name for p in mine.iterdir()) == ["report.md"] and (mine / "report.md").read_text() == "my own report"
    )
    assert run_cli(["report", run, "--output", tmp_path / "new"], capsys)[0] == 0  # a folder of its own: fine
    assert (tmp_path / "new" / "report.html").is_file()


def test_a_pipeline_reruns_only_the_student_that_failed_once_it_is_fixed(tiny_model, tmp_path, capsys):
    plugin = tmp_path / "bad_loss.py"
    plugin.write_text(
        "from distilkit.losses import register_loss\n"
        "@register_loss('pipeline_nan', reads={'logits'})\n"
        "def pipeline_nan(batch):\n"
        "    return batch.student_logits.float().sum() * float('nan')\n"
    )
    good = {"student": "1", "epochs": 1, "lr": 1e-3, "batch_size": 16, "warmup": 0, "force": True}
    bad = {**good, "plugins": str(plugin), "losses": {"kd": 1, "pipeline_nan": 1}}
    stages = {"stages": ["teacher", "distill"]}
    teacher = {"model": str(tiny_model), "epochs": 1, "lr": 1e-3, "batch_size": 16, "warmup": 0}
    students = {"students": {"first": good, "second": bad}, "quantize": {}}  # run in this order
    recipe = tiny_recipe(tmp_path, tiny_model, teacher=teacher, **students, **stages)
    code, _, err = run_cli(["run", recipe], capsys)
    assert code == 2 and "loss 'pipeline_nan'" in err.strip().splitlines()[-1], err
    run = tmp_path / "run"
    finished = {p: (run / p / "metrics.json").stat().st_mtime for p in ("teacher", "students/first")}
    fixed = yaml.safe_load(recipe.read_text())
    fixed["students"]["second"] = good
    recipe.write_text(yaml.safe_dump(fixed))
    code, out, err = run_cli(["run", recipe], capsys)
    assert code == 0, err
    assert {p: (run / p / "metrics.json").stat().st_mtime for p in finished} == finished  # reused, not retrained
    assert (run / "students" / "second" / "metrics.json").is_file()


def test_a_pipeline_folder_in_use_is_refused(tiny_pipeline, tmp_path, capsys):
    from distilkit.files import FolderLock

    recipe, run = tiny_pipeline
    lock = FolderLock(run)
    assert lock.acquire()  # as a `distilkit run` in progress holds it
    try:
        code, _, err = run_cli(["run", recipe, "--overwrite"], capsys)
    finally:
        lock.release()
    assert code == 2 and "is running this pipeline" in err and (run / "report.html").is_file(), err


def test_changed_sections_allows_additions_and_edits_of_what_did_not_finish():
    old = {"data": {"data": "x"}, "students": {"a": {"epochs": 1}}, "prune": {}}

    def finished(key):
        return True

    assert changed_sections(old, {**old, "students": {"a": {"epochs": 1}, "b": {"epochs": 2}}}, finished) == []
    assert changed_sections(old, {**old, "quantize": {"methods": ["static"]}, "bench": {"rounds": 3}}, finished) == []
    assert changed_sections(old, {**old, "data": {"data": "y"}}, finished) == ["data"]
    assert changed_sections(old, {**old, "students": {"a": {"epochs": 2}}}, finished) == ["students.a"]
    nothing = {"students": {"a": {"epochs": 2}}, "data": {"data": "y"}}
    assert changed_sections(old, {**old, **nothing}, lambda key: False) == []  # nothing finished: nothing to redo
    only_teacher = {**old, "students": {"a": {"epochs": 2}}}
    assert changed_sections(old, only_teacher, lambda key: key == "teacher") == []  # a failed student, fixed


def test_report_renders_in_headless_chromium(tiny_pipeline, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (the Makefile's test target does)")
        pytest.skip("Debian chromium is not installed here (apt-get install chromium)")
    _, run = tiny_pipeline
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1200,1800",
            (run / "report.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    colours = np.unique((pixels.reshape(-1, 3) * 255).astype(int), axis=0)
    assert len(colours) > 200  # text, table and plots, not a blank or error page
    green = np.all(np.abs(pixels - np.array([0.933, 0.965, 0.933])) < 0.02, axis=-1)  # the verdict box
    assert green.sum() > 5000


def test_bench_torch_and_onnx(tiny_pipeline, tmp_path, capsys):
    _, run = tiny_pipeline
    out = tmp_path / "bench.json"
    code, stdout, err = run_cli(
        [
            "bench",
            run / "students" / "s1",
            run / "int8" / "s1-dynamic",
            "--rounds",
            "3",
            "--seq-len",
            "16",
            "--batch-size",
            "4",
            "--output",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    rows = json.loads(out.read_text())["models"]
    assert [r["backend"] for r in rows] == ["torch", "onnx"] and rows[1]["precision"] == "dynamic"
    assert rows[0]["peak_memory_mb"] > 50 and rows[0]["latency_p95_ms"] >= rows[0]["latency_p50_ms"]
    assert "speed-up" in stdout


def test_peak_memory_is_the_models_own_not_its_parents(tiny_pipeline):
    from distilkit.evaluation.bench import peak_memory_mb

    _, run = tiny_pipeline
    model = str(run / "students" / "s1")
    alone = peak_memory_mb(model, "torch", 4, 16)
    ballast = np.ones(96 * 2**20)  # 768 MiB touched in this (parent) process
    assert ballast.sum() > 0
    beside_a_big_parent = peak_memory_mb(model, "torch", 4, 16)
    del ballast
    assert alone > 50 and beside_a_big_parent < alone + 300  # getrusage's ru_maxrss would add the 768 MiB


def test_bench_backend_not_installed(tiny_pipeline, monkeypatch, capsys):
    import importlib.util

    _, run = tiny_pipeline
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    code, _, err = run_cli(["bench", run / "int8" / "s1-dynamic", "--rounds", "2"], capsys)
    assert code == 2 and "needs ONNX Runtime, which is not installed" in err
    code, _, err = run_cli(["bench", run / "teacher", "--backend", "onnx"], capsys)
    assert code == 2 and "not installed" in err


def test_bench_onnx_backend_needs_an_export(tiny_pipeline, capsys):
    _, run = tiny_pipeline
    code, _, err = run_cli(["bench", run / "teacher", "--backend", "onnx", "--rounds", "2"], capsys)
    assert code == 2 and "run distilkit export --model" in err


@pytest.mark.parametrize(
    "change, message",
    [
        ({"studnets": {}}, "unknown key 'studnets' in the recipe; did you mean 'students'?"),
        (
            {"students": {"s1": {"student": "1", "epocs": 2}}},
            "unknown key 'epocs' in students.s1; did you mean 'epochs'?",
        ),
        ({"stages": ["distill", "evaluate"]}, "stage distill needs"),
        ({"stages": ["teacher", "distill", "export", "evaluate", "report"]}, "stage report needs"),
        ({"quantize": {"methods": ["int4"]}}, "unknown method 'int4'"),
        (
            {"quantize": {"models": ["s9"], "methods": ["dynamic"]}},
            "'s9' is not the teacher, a student or a pruned model",
        ),
    ],
)
def test_bad_recipes_fail_with_one_line(tiny_model, tmp_path, capsys, change, message):
    recipe = tiny_recipe(tmp_path, tiny_model, **change)
    code, _, err = run_cli(["run", recipe], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_recipes_parse_and_every_option_exists(recipe, tmp_path):
    """Each section goes through the same parser as its command, so names and value types are checked."""
    content = load_recipe(str(recipe))
    Pipeline(content, tmp_path / "run", str(recipe))  # references between sections resolve
    data = content.get("data") or {}
    sections = [("finetune", {**data, **{k: v for k, v in content["teacher"].items() if k != "run"}})]
    sections += [("distill", {**data, **opts, "teacher": "x"}) for opts in (content.get("students") or {}).values()]
    sections += [("bench", content.get("bench") or {}), ("report", content.get("report") or {})]
    for command, options in sections:
        config = tmp_path / f"{command}.yaml"
        config.write_text(yaml.safe_dump(options))
        parse([command, "--config", str(config)])  # raises UsageError on a bad name or type
    assert {"bbc-news", "brown-pos", "sst2-tinybert4", "conll03-ner-tinybert4"} <= {
        p.stem for p in RECIPES.glob("*.yaml")
    }


def test_missing_recipe_file(tmp_path):
    with pytest.raises(DistilkitError, match="recipe file not found"):
        load_recipe(str(tmp_path / "nope.yaml"))


def test_min_retention_is_judged_on_the_lower_end_of_the_interval_unless_asked_otherwise():
    from distilkit.evaluation.report import recommend, verdict_text

    def row(model, score, low, latency, paired):
        return {
            "model": model,
            "score": score,
            "retention": score / 0.95,
            "retention_low": low,
            "paired": paired,
            "latency_p50_ms": latency,
            "latency_p95_ms": latency,
            "interval": None,
            "speedup": 1.0,
            "size_mb": 1.0,
        }

    unclear = {
        "metric": "accuracy",
        "difference": -0.01,
        "interval": [-0.04, 0.02],
        "unit": "examples",
        "p_value": 0.5,
        "test": "McNemar exact",
        "significant": False,
    }
    rows = [
        row("teacher", 0.95, 1.0, 10.0, None),
        row("fast", 0.94, 0.958, 2.0, unclear),
        row("safe", 0.95, 0.99, 5.0, {**unclear, "difference": 0.0, "interval": [-0.009, 0.009]}),
    ]
    assert recommend(rows, 0.98, "point")["model"] == "fast"  # 98.9% as a point estimate
    best = recommend(rows, 0.98, "lower")
    assert best["model"] == "safe"  # fast's lower end, 95.8%, is below 98%
    verdict, _ = verdict_text(rows, best, "accuracy", 0.98, "lower")
    assert "at least 99.0% at 95%" in verdict and "not distinguishable from the teacher" in verdict
    rows[2]["retention_low"] = 0.97
    verdict, _ = verdict_text(rows, recommend(rows, 0.98, "lower"), "accuracy", 0.98, "lower")
    assert verdict.startswith("Ship **teacher**")  # no student is sure to keep 98%: the teacher itself qualifies
