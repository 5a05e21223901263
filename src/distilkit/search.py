"""`distilkit search`: hyper-parameter search over `finetune` or `distill` options with Optuna (TPE, seeded).

The search space maps option names to ranges or choices (YAML or JSON):

    lr: [1.0e-5, 1.0e-3]          # two numbers: a range (log scale for lr; int when both are ints)
    epochs: [1, 3]
    batch_size: {choices: [16, 32]}
    temperature: [1.0, 4.0]        # distill only
    alpha: [0.0, 1.0]              # distill only

Each trial is an ordinary run folder under OUTPUT/trial-NNN, scored by its dev metric. The best trial's
options are written to OUTPUT/best.yaml (usable as `--config`), all trials to OUTPUT/trials.csv.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import yaml

from distilkit.config import DistillConfig, FinetuneConfig, SearchConfig
from distilkit.errors import DistilkitError
from distilkit.runs import write_atomic, write_yaml

LOG_SCALE = {"lr", "intermediate_lr", "weight_decay", "adversarial_epsilon"}
COMMANDS = {"finetune": FinetuneConfig, "distill": DistillConfig}
NOT_SEARCHABLE = {"output", "resume", "overwrite", "config"}


def parse_space(space: dict, cls) -> dict:
    """Validate the space: known options, non-empty ranges. Returns name → ("range", lo, hi, is_int) or ("choice", [...])."""
    if not space:
        raise DistilkitError("--space is empty: give at least one option with a range, e.g. {lr: [1e-5, 1e-3]}")
    valid = {f.name for f in dataclasses.fields(cls)} - NOT_SEARCHABLE
    out = {}
    for name, spec in space.items():
        key = str(name).replace("-", "_")
        if key not in valid:
            raise DistilkitError(f"--space: {name!r} is not an option of {cls.__name__.removesuffix('Config').lower()}")
        if isinstance(spec, dict) and "choices" in spec:
            choices = list(spec["choices"] or [])
            if not choices:
                raise DistilkitError(f"--space: {name!r} has no choices")
            out[key] = ("choice", choices)
        elif isinstance(spec, (list, tuple)) and len(spec) == 2 and all(isinstance(v, (int, float)) for v in spec):
            lo, hi = spec
            if not lo < hi:
                raise DistilkitError(f"--space: {name!r} has an empty range [{lo}, {hi}]; the low end must be below the high end")
            out[key] = ("range", lo, hi, isinstance(lo, int) and isinstance(hi, int))
        else:
            raise DistilkitError(f"--space: {name!r} must be [low, high] or {{choices: [...]}}, got {spec!r}")
    return out


def _suggest(trial, name: str, spec: tuple):
    if spec[0] == "choice":
        return trial.suggest_categorical(name, spec[1])
    _, lo, hi, is_int = spec
    if is_int:
        return trial.suggest_int(name, lo, hi)
    return trial.suggest_float(name, lo, hi, log=name in LOG_SCALE and lo > 0)


def _base_options(cfg: SearchConfig, cls) -> dict:
    base = {}
    if cfg.base:
        path = Path(cfg.base)
        if not path.is_file():
            raise DistilkitError(f"--base {cfg.base}: file not found")
        base = yaml.safe_load(path.read_text()) or {}
        if not isinstance(base, dict):
            raise DistilkitError(f"{path}: expected a mapping of option: value")
    base.update(cfg.options or {})
    base = {str(k).replace("-", "_"): v for k, v in base.items()}
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(base) - valid)
    if unknown:
        raise DistilkitError(f"--base/--options: unknown option {unknown[0]!r} for {cfg.command}")
    return base


def _score(metrics: dict, command: str, metric: str) -> float:
    dev = metrics.get("dev")
    if dev is None:
        raise DistilkitError("search needs a dev split to score trials: give --dev-file or a --split with a dev part")
    scores = dev["student"] if command == "distill" else dev
    value = scores.get(metric, scores.get("entity", {}).get(metric))
    if value is None:
        raise DistilkitError(f"--metric {metric!r} is not in the dev metrics ({', '.join(k for k, v in scores.items() if isinstance(v, float))})")
    return float(value)


def search(cfg: SearchConfig) -> Path:
    import json

    import optuna

    cls = COMMANDS[cfg.command]
    space = parse_space(cfg.space or {}, cls)
    base = _base_options(cfg, cls)
    if cfg.trials < 1:
        raise DistilkitError(f"--trials {cfg.trials}: must be at least 1")
    output = Path(cfg.output)
    if (output / "best.yaml").exists() and not cfg.overwrite:
        raise DistilkitError(f"{output}: a finished search is there; pass --overwrite or choose another --output")
    metric = cfg.metric or ("mse" if base.get("regression") else "accuracy")
    greater = metric not in ("mse", "mae", "loss")
    from distilkit.distill.command import distill
    from distilkit.finetune import finetune

    run = {"finetune": finetune, "distill": distill}[cfg.command]
    rows = []

    def objective(trial):
        params = {name: _suggest(trial, name, spec) for name, spec in space.items()}
        folder = output / f"trial-{trial.number:03d}"
        options = {**base, **params, "output": str(folder), "overwrite": True}
        print(f"\ntrial {trial.number}: {params}", flush=True)
        run(cls(**options), {**options})
        score = _score(json.loads((folder / "metrics.json").read_text()), cfg.command, metric)
        rows.append({"trial": trial.number, **params, metric: score})
        return score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if greater else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=cfg.seed))
    study.optimize(objective, n_trials=cfg.trials)
    best = {**base, **study.best_params}
    write_yaml(output / "best.yaml", best)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(output / "trials.csv", buffer.getvalue())
    print(f"\n{'trial':>5}  " + "  ".join(f"{k:>12}" for k in rows[0] if k != "trial"))
    for r in rows:
        print(f"{r['trial']:>5}  " + "  ".join(f"{v:>12.4g}" if isinstance(v, float) else f"{v!s:>12}"
                                              for k, v in r.items() if k != "trial"))
    print(f"\nbest dev {metric}: {study.best_value:.4f} (trial {study.best_trial.number}) → {output / 'best.yaml'}; "
          f"run it with distilkit {cfg.command} --config {output / 'best.yaml'} --output ...")
    return output
