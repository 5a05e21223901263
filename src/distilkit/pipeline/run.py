"""`distilkit run RECIPE.yaml`: the whole path from teacher to small fast model, in one run folder.

A recipe (see recipes/bbc-news.yaml) has these sections; each stage's options are exactly those of the command
that runs it, so `distilkit finetune --help` documents `teacher:` and so on:

    data:      DataOptions shared by every stage (data, max_length, ...)
    teacher:   finetune options, or {run: FOLDER} to reuse a fine-tuned teacher (data.task embedding:
               {model: NAME}, an embedding model used as it is; pipeline/embedding.py)
    students:  {name: distill options}            (teacher and output are set by the pipeline)
    prune:     {name: prune options + from: MODEL} (MODEL: teacher or a student name)
    quantize:  {models: [...], methods: [dynamic, static, torchao]}   ONNX export + int8 of those models
    bench:     bench options;  report: report options;  threads: CPU threads for everything
    stages:    the stages to run (default: all): teacher, distill, prune, export, evaluate, bench, report

Layout: teacher/, students/<name>/, pruned/<name>/, onnx/<model>/, int8/<model>-<method>/, eval/<model>.json,
bench.json, report.html, report.md, plots/. A stage whose outputs are complete is skipped, so rerunning after
a crash or Ctrl-C resumes (training stages also resume from their last checkpoint).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import time
from pathlib import Path
from typing import get_args

import yaml

from distilkit.compress.options import ExportConfig, PruneConfig, QuantizeConfig, QuantizeMethod
from distilkit.config import DataOptions, DistillConfig, FinetuneConfig
from distilkit.config_loader import load_options, read_yaml
from distilkit.console import show
from distilkit.errors import DistilkitError
from distilkit.evaluation.options import BenchConfig, ReportConfig
from distilkit.files import (
    FolderLock,
    check_writable_folder,
    listing,
    live_holder,
    mark,
    marker_kind,
    record_files,
    remove_output,
    write_json,
    write_yaml,
)
from distilkit.hub.speed import add_speed, cpu_name
from distilkit.pipeline.embedding import check_embedding_data, embedding_scorer, embedding_teacher
from distilkit.pipeline.options import PipelineConfig, QuantizeStage, RecipeFile
from distilkit.runs import RunFolder, make_folder

STAGES = ["teacher", "distill", "prune", "export", "evaluate", "bench", "report"]
METHODS = get_args(QuantizeMethod)
# section → (its options class, fields the pipeline sets itself, keys of the section that are not options)
SECTIONS = {
    "data": (DataOptions, (), ()),
    "teacher": (FinetuneConfig, ("output",), ("run",)),
    "quantize": (QuantizeStage, (), ()),
    "bench": (BenchConfig, ("models", "output"), ()),
    "report": (ReportConfig, ("runs", "output"), ()),
}
NAMED_SECTIONS = {  # name → options, one per student / pruned model
    "students": (DistillConfig, ("teacher", "output"), ()),
    "prune": (PruneConfig, ("model", "output"), ("from",)),
}


def load_recipe(path: str) -> dict:
    """Read and validate a recipe: every key must be an option of the stage that uses it."""
    recipe = read_yaml(path, f"{path}: recipe file not found (see recipes/ for examples)")
    return check_recipe(recipe, path)


def check_recipe(recipe, source: str) -> dict:
    """The recipe with each section checked by the one loader (names, types, ranges) before any stage runs.

    Keys come back underscored and values converted (YAML's "1e-4" text is a number), so the stages build their
    configs from exactly what was checked.
    """
    top = load_options(RecipeFile, recipe, source, "the recipe")
    checked = dict(top)
    for section, (cls, drop, extra) in SECTIONS.items():
        if top.get(section) is not None:
            checked[section] = load_options(cls, top[section], source, section, drop, extra)
    for section, (cls, drop, extra) in NAMED_SECTIONS.items():
        if top.get(section) is not None:
            checked[section] = {
                name: load_options(cls, options, source, f"{section}.{name}", drop, extra)
                for name, options in top[section].items()
            }
    for method in (checked.get("quantize") or {}).get("methods") or []:
        if method not in METHODS:
            raise DistilkitError(f"{source}: quantize.methods: unknown method {method!r}; use {', '.join(METHODS)}")
    for stage in top.get("stages") or []:
        if stage not in STAGES:
            near = difflib.get_close_matches(str(stage), STAGES, n=1)
            raise DistilkitError(
                f"{source}: unknown stage {stage!r} in stages"
                + (f"; did you mean {near[0]!r}?" if near else f"; stages: {', '.join(STAGES)}")
            )
    return checked


def check_pipeline_folder(folder: Path) -> None:
    """A pipeline writes only into a new or empty folder or its own (never a user's, nor another command's run)."""
    check_writable_folder(folder, "pipeline")
    kind = marker_kind(folder)
    if kind not in (None, "pipeline"):
        raise DistilkitError(
            f"--output {folder}: a distilkit {kind} folder, not a pipeline's; choose another --output for the recipe"
        )
    holder = live_holder(folder)
    if holder:
        raise DistilkitError(f"--output {folder}: {holder} is running this pipeline; wait for it to finish")


def _as_checked(recipe: dict, source: str) -> dict:
    """An earlier run's recipe.yaml in the form check_recipe gives, so a resume compares like with like (an older
    distilkit saved recipes as written: 1e-4 as text, a student's options as null); as saved if it no longer passes."""
    try:
        return check_recipe(recipe, source)
    except DistilkitError:
        return recipe


def _section(recipe: dict, key: str):
    """A section ("data", "teacher") or one named entry ("students.s") of a recipe; None when absent."""
    section, _, name = key.partition(".")
    value = recipe.get(section) or {}
    return value.get(name) if name else value


def edited_sections(old: dict, new: dict) -> list[str]:
    """The data, the teacher and the students/pruned models of `new` that `old` has with other options (new
    entries are not edits: nothing of theirs exists yet)."""
    named = [
        f"{section}.{name}"
        for section in ("students", "prune")
        for name in (new.get(section) or {})
        if name in (old.get(section) or {})
    ]
    return [key for key in ["data", "teacher", *named] if _section(old, key) != _section(new, key)]


def changed_sections(old: dict, new: dict, finished) -> list[str]:
    """The edited sections whose finished outputs a resumed run would wrongly reuse.

    `finished(key)` says whether "teacher", "students.s" or "prune.p" has finished outputs. Editing the data matters
    once anything is finished; editing the teacher, a student or a pruned model only when it is finished itself,
    so fixing a student that failed (it has no outputs) reuses every stage that finished.
    """
    keys = ["teacher"] + [f"{section}.{name}" for section in ("students", "prune") for name in (new.get(section) or {})]
    anything = any(finished(key) for key in keys)
    return [key for key in edited_sections(old, new) if (anything if key == "data" else finished(key))]


class Pipeline:
    """One recipe in one run folder; `models` maps a display name to the folder evaluate/bench/report use."""

    def __init__(self, recipe: dict, folder: Path, recipe_path: str):
        self.recipe, self.folder, self.recipe_path = recipe, folder, recipe_path
        self.stages = recipe.get("stages") or STAGES
        self.data = dict(recipe.get("data") or {})
        self.threads = recipe.get("threads")
        teacher = recipe.get("teacher") or {}
        self.embedding = self.data.get("task") == "embedding"  # pipeline/embedding.py: teacher used as it is
        if self.embedding:
            self.teacher = embedding_teacher(teacher, recipe_path)
            if "evaluate" in self.stages:
                check_embedding_data(self.data, recipe_path)
        else:
            self.teacher = Path(teacher["run"]) if teacher.get("run") else folder / "teacher"
        self.students = {n: folder / "students" / n for n in recipe.get("students") or {}}
        self.pruned = {n: folder / "pruned" / n for n in recipe.get("prune") or {}}
        quant = recipe.get("quantize") or {}
        self.methods = list(quant.get("methods") or [])
        trained = {"teacher": self.teacher, **self.students, **self.pruned}
        self.to_quantize = list(quant.get("models") or (trained if self.methods else []))
        for m in self.to_quantize:
            if m not in trained:
                raise DistilkitError(
                    f"{recipe_path}: quantize.models: {m!r} is not the teacher, a student or a pruned "
                    f"model of this recipe ({', '.join(trained)})"
                )
        self.models = dict(trained)
        for m in self.to_quantize:
            for method in self.methods:
                self.models[f"{m} int8-{method}"] = folder / "int8" / f"{m}-{method}"
        self.check_dependencies()

    def finished(self, section: str) -> bool:
        """Whether a recipe section ("teacher", "students.s", "prune.p") has finished outputs in this folder."""
        if section == "teacher":
            return self.embedding or (self.teacher / "metrics.json").exists()
        kind, name = section.split(".", 1)
        folder = (self.students if kind == "students" else self.pruned).get(name)
        return folder is not None and (folder / "metrics.json").exists()

    def discard_unfinished(self, edited: list[str]) -> None:
        """An edited student or pruned model that did not finish starts again: a partial folder it left (a crash
        after a checkpoint) was trained with the old options, so --resume would refuse it."""
        for key in edited:
            kind, _, name = key.partition(".")
            folder = {"students": self.students, "prune": self.pruned}.get(kind, {}).get(name)
            if folder is not None and RunFolder(str(folder)).work.exists():
                RunFolder(str(folder)).discard_leftover()
                print(f"{key} changed: its unfinished run is discarded and starts again")

    def producer(self, name: str) -> str:
        if name == "teacher":
            return "teacher"
        return "distill" if name in self.students else "prune" if name in self.pruned else "export"

    def check_dependencies(self) -> None:
        """A stage may be skipped only if what the stages that run need from it already exists."""

        def needs(name: str, by: str) -> None:
            stage, output = self.producer(name), self.models[name]
            if stage not in self.stages and not output.exists():
                hint = " (or give teacher.run)" if stage == "teacher" else ""
                raise DistilkitError(
                    f"{self.recipe_path}: stage {by} needs {output} ({name}) from stage {stage}, "
                    f"which this recipe skips; add {stage} to stages{hint}"
                )

        for name, opts in (self.recipe.get("prune") or {}).items():
            source = (opts or {}).get("from", "teacher")
            if source != "teacher" and source not in self.students:
                raise DistilkitError(f"{self.recipe_path}: prune.{name}.from: {source!r} is not teacher or a student")
            if "prune" in self.stages:
                needs(source, f"prune ({name})")
        if self.students and "distill" in self.stages:
            needs("teacher", "distill")
        if "export" in self.stages:
            for m in self.to_quantize:
                needs(m, "export")
        for stage in ("evaluate", "bench"):
            if stage in self.stages:
                for m in self.models:
                    needs(m, stage)
        if "report" in self.stages:
            for stage, output in (("evaluate", self.folder / "eval"), ("bench", self.folder / "bench.json")):
                if stage not in self.stages and not output.exists():
                    raise DistilkitError(
                        f"{self.recipe_path}: stage report needs {output} from stage {stage}, which "
                        f"this recipe skips; add {stage} to stages"
                    )

    # --- the stages -------------------------------------------------------------------------------------------
    def common_training(self) -> dict:
        return {**self.data, "resume": True, **({"threads": self.threads} if self.threads else {})}

    def stage_teacher(self) -> None:
        from distilkit.training.finetune import finetune

        if self.finished("teacher"):
            return
        if (self.recipe.get("teacher") or {}).get("run"):
            raise DistilkitError(
                f"{self.recipe_path}: teacher.run {self.teacher} is not a finished run folder "
                "(no metrics.json); fine-tune it first or drop run: to train one here"
            )
        opts = {**self.common_training(), **(self.recipe.get("teacher") or {}), "output": str(self.teacher)}
        cfg = FinetuneConfig(**opts)
        finetune(cfg, dataclasses.asdict(cfg))

    def stage_distill(self) -> None:
        from distilkit.distillation.distill import distill

        for name, folder in self.students.items():
            if (folder / "metrics.json").exists():
                continue
            print(f"  student {name}")
            opts = {
                **self.common_training(),
                **(self.recipe["students"][name] or {}),
                "teacher": str(self.teacher),
                "output": str(folder),
            }
            cfg = DistillConfig(**opts)
            distill(cfg, dataclasses.asdict(cfg))

    def stage_prune(self) -> None:
        from distilkit.compress.prune import prune

        for name, folder in self.pruned.items():
            if (folder / "metrics.json").exists():
                continue
            opts = dict(self.recipe["prune"][name] or {})
            source = self.models[opts.pop("from", "teacher")]
            cfg = PruneConfig(**{**self.data, **opts, "model": str(source), "output": str(folder), "overwrite": True})
            prune(cfg, dataclasses.asdict(cfg))

    def stage_export(self) -> None:
        from distilkit.compress.export import export
        from distilkit.compress.quantize import quantize

        quant = self.recipe.get("quantize") or {}
        for m in self.to_quantize:
            onnx_dir = self.folder / "onnx" / m
            if any(x != "torchao" for x in self.methods) and not (onnx_dir / "distilkit_onnx.json").exists():
                export(ExportConfig(**self.data, model=str(self.models[m]), output=str(onnx_dir), overwrite=True))
            for method in self.methods:
                out = self.models[f"{m} int8-{method}"]
                if (out / "quantize_report.json").exists():
                    continue
                source = self.models[m] if method == "torchao" else onnx_dir
                extra = {"calibration_samples": quant["calibration_samples"]} if "calibration_samples" in quant else {}
                quantize(
                    QuantizeConfig(
                        **self.data, **extra, model=str(source), method=method, output=str(out), overwrite=True
                    )
                )

    def stage_evaluate(self) -> None:
        """eval/<model>.json for every model, each after the first (the teacher) with its paired comparison with
        the teacher on the same test units; the teacher is scored again on a resume, for those units."""
        from distilkit.evaluation.intervals import compare

        score = embedding_scorer(self.data) if self.embedding else self.score_on_test
        teacher = None
        for name, path in self.models.items():
            target = self.folder / "eval" / f"{name}.json"
            if target.exists() and teacher is not None:
                continue
            metrics, units, metric = score(path)
            if teacher is None:
                teacher = units
            else:
                metrics["paired"] = {**compare(teacher, units, metric), "compared_with": "teacher"}
            if not target.exists():
                write_json(target, {**metrics, "name": name, "path": str(path)})

    def score_on_test(self, path: Path) -> tuple:
        """(metrics with the split, per-example units, the task's headline metric) of a model on the test split."""
        from distilkit.evaluation.evaluate import score_rows, split_rows_for
        from distilkit.evaluation.metrics import default_metric
        from distilkit.inference.loading import load_trained

        trained = load_trained(str(path), self.data.get("max_length"))
        data, split, rows = split_rows_for(trained, DataOptions(**self.data), "test", as_in_training=True)
        metrics, _, units = score_rows(trained, data, rows, trained.max_length, 64, units=True)
        metric, _ = default_metric(data.task, trained.regression, data.is_bio)
        return {**metrics, "split": split}, units, metric

    def stage_bench(self) -> None:
        from distilkit.evaluation.bench import bench

        target = self.folder / "bench.json"
        names = list(self.models)
        if target.exists() and [r["model"] for r in json.loads(target.read_text())["models"]] == names:
            return
        opts = {"threads": self.threads, **(self.recipe.get("bench") or {})}
        result = bench(BenchConfig(**opts, models=[str(self.models[n]) for n in names]))
        renamed = {f"{row['model']}: ": f"{name}: " for row, name in zip(result["models"], names)}
        for row, name in zip(result["models"], names):
            row["model"] = name
        # the summary names models as bench labelled them; use the recipe's names there too
        result["warnings"] = [
            next((new + w[len(old) :] for old, new in renamed.items() if w.startswith(old)), w)
            for w in result.get("warnings", [])
        ]
        write_json(target, result)
        cpu = cpu_name()
        for row, name in zip(result["models"], names):  # each model's card gets its numbers, beside the first's
            add_speed(self.models[name], row, result, names[0], cpu)

    def stage_report(self) -> None:
        from distilkit.evaluation.report import report

        report(ReportConfig(**(self.recipe.get("report") or {}), runs=[str(self.folder)]), quiet=True)


def run_pipeline(cfg: PipelineConfig, resolved: dict | None = None) -> Path:
    if not cfg.recipe:
        raise DistilkitError("no recipe given: distilkit run RECIPE.yaml (see recipes/)")
    recipe = load_recipe(cfg.recipe)
    folder = Path(cfg.output or recipe.get("output") or f"runs/{Path(cfg.recipe).stem}")
    check_pipeline_folder(folder)
    if cfg.overwrite and folder.exists():
        remove_output(folder)
    pipeline = Pipeline(recipe, folder, cfg.recipe)
    if (folder / "recipe.yaml").exists():
        saved = yaml.safe_load((folder / "recipe.yaml").read_text(encoding="utf-8")) or {}
        changed = changed_sections(_as_checked(saved, str(folder / "recipe.yaml")), recipe, pipeline.finished)
        if changed:
            raise DistilkitError(
                f"{cfg.recipe}: {', '.join(changed)} changed since {folder} was run, so its finished "
                f"outputs no longer match; rerun with --overwrite, or give a new --output"
            )
        pipeline.discard_unfinished(edited_sections(saved, recipe))
    make_folder(folder)
    lock = FolderLock(folder)  # held until the process ends: a second `run` on this folder is refused
    if not lock.acquire():
        raise DistilkitError(f"--output {folder}: {live_holder(folder)} is running this pipeline; wait for it")
    mark(folder, "pipeline")
    write_yaml(folder / "recipe.yaml", recipe)
    timings_file = folder / "stages.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    started_all = time.perf_counter()
    todo = [s for s in STAGES if s in pipeline.stages]
    for i, stage in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {stage} ...", flush=True)
        started, before = time.perf_counter(), set(listing(folder))
        try:
            getattr(pipeline, f"stage_{stage}")()
        finally:  # what the stage wrote is distilkit's, also when it failed half-way
            record_files(folder, new_since=before)
        seconds = time.perf_counter() - started
        if seconds >= 1 or stage not in timings:  # a skipped (finished) stage keeps the time it took
            timings[stage] = round(seconds, 1)
        write_json(timings_file, timings)
        print(
            f"[{i}/{len(todo)}] {stage} done in {seconds:.0f} s (total {time.perf_counter() - started_all:.0f} s)",
            flush=True,
        )
    if (folder / "report.md").exists():
        from distilkit.evaluation.report import final_table

        show("\n" + final_table(folder))
        show(f"\nreport: {folder / 'report.html'} and {folder / 'report.md'}")
    return folder
