"""Options of `distilkit run`, and the shape of its recipe file (described in distilkit.pipeline.run).

The recipe's top level and its quantize section are dataclasses like every command's options, so the one loader
(distilkit.config_loader) checks them as it checks each stage's section: names, types and ranges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from distilkit.option_rules import AT_LEAST_1, SEED, Checked, opt


@dataclass
class PipelineConfig(Checked):
    """Run a recipe end to end into one run folder: teacher → students → prune → ONNX + int8 → evaluate → bench →
    report.

    Args:
        recipe: Recipe YAML file (see recipes/ and docs/guides/pipeline.md).
        output: Run folder (default: the recipe's output).
        overwrite: Start again from scratch instead of resuming (finished stages are otherwise skipped).
    """

    recipe: Optional[str] = None
    output: Optional[str] = None
    overwrite: bool = False


@dataclass
class RecipeFile(Checked):
    """The top level of a recipe; each section's own options are checked against the command that runs it.

    Args:
        name: The recipe's name.
        output: Run folder (default: runs/ + the recipe file's name without .yaml; `distilkit run --output` wins).
        data: Data options shared by every stage (those of `distilkit finetune --help`'s data groups).
        teacher: The teacher: `distilkit finetune` options, or {run: FOLDER} to reuse a fine-tuned teacher.
        students: Student name → `distilkit distill` options (the teacher and data come from the recipe).
        prune: Pruned model name → `distilkit prune` options, plus from: the teacher or a student's name.
        quantize: ONNX export + int8: models (default: every model), methods (dynamic, static, torchao),
            calibration_samples.
        bench: `distilkit bench` options (rounds, batch_size, ...).
        report: `distilkit report` options (min_retention, retention_rule).
        stages: Run only these stages (default: all): teacher, distill, prune, export, evaluate, bench, report.
        threads: CPU threads of every stage.
    """

    name: Optional[str] = None
    output: Optional[str] = None
    data: Optional[dict] = None  # DataOptions, shared by every stage
    teacher: Optional[dict] = None  # finetune options, or {run: FOLDER}
    students: Optional[dict] = None  # name → distill options
    prune: Optional[dict] = None  # name → prune options + from: MODEL
    quantize: Optional[dict] = None  # QuantizeStage
    bench: Optional[dict] = None
    report: Optional[dict] = None
    # names, not a Literal: pipeline.check_recipe refuses an unknown stage with the nearest one
    stages: Optional[list[str]] = None
    threads: Optional[int] = opt(None, AT_LEAST_1)


@dataclass
class QuantizeStage(Checked):
    """A recipe's quantize section: ONNX export + int8 of these models with each method."""

    models: Optional[list[str]] = None  # default: the teacher, every student and pruned model
    methods: Optional[list[str]] = None  # compress.options.QuantizeMethod names (checked with a clear message)
    calibration_samples: Optional[int] = opt(None, AT_LEAST_1)  # default: quantize's own


@dataclass
class SearchConfig(Checked):
    """Hyper-parameter search over finetune or distill options (Optuna TPE); writes best.yaml and trials.csv.

    Args:
        command: Which command to tune.
        base: YAML file with the fixed options of every trial (model/teacher, data, ...).
        options: Fixed options given inline, e.g. {model: minilm-l6, data: bbc-news} (override --base).
        space: Option → [low, high] or {choices: [...]}, e.g. {lr: [1e-5, 1e-3], epochs: [1, 3]}.
        trials: Number of trials (the budget).
        metric: Dev metric to optimise (default: accuracy; mse for regression).
        seed: Seed of the sampler.
        output: Folder for the trials, best.yaml and trials.csv.
        overwrite: Replace a finished search in --output.
    """

    command: Literal["finetune", "distill"] = "finetune"
    base: Optional[str] = None
    options: Optional[dict] = None
    space: Optional[dict] = None
    trials: int = opt(10, AT_LEAST_1)
    metric: Optional[str] = None
    seed: int = opt(42, SEED)
    output: str = "runs/search"
    overwrite: bool = False
