"""`distilkit search`: hyper-parameter search over `finetune` or `distill` options with Optuna (TPE, seeded).

The search space maps option names to ranges or choices (YAML or JSON):

    lr: [1.0e-5, 1.0e-3]          # two numbers: a range (log scale for lr; int when both are ints)
    epochs: [1, 3]
    batch_size: {choices: [16, 32]}
    temperature: [1.0, 4.0]        # distill only
    alpha: [0.0, 1.0]              # distill only

Each trial is an ordinary run folder under OUTPUT/trial-NNN, scored by its dev metric. The best trial's
options are written to OUTPUT/best.yaml (usable as `--config`), all trials to OUTPUT/trials.csv.

A trial that fails (a value of the space the model cannot train with, running out of memory, a bug) is
recorded as Optuna's FAIL with a one-line error, the folders it created are removed, and the search goes on;
only when every trial fails does the search end with an error. Fixed options that would fail every trial
alike (an option out of range, a missing data file) are refused before the first trial.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
import sys
import traceback
from pathlib import Path

from distilkit.config import DistillConfig, FinetuneConfig
from distilkit.config_loader import check_keys, load_options, read_yaml
from distilkit.console import show
from distilkit.errors import DistilkitError
from distilkit.files import MARKER, check_writable_folder, mark, marker_kind, record_files, write_atomic, write_yaml
from distilkit.pipeline.options import SearchConfig
from distilkit.runs import RunFolder, make_folder

LOG_SCALE = {"lr", "intermediate_lr", "weight_decay", "adversarial_epsilon"}
COMMANDS = {"finetune": FinetuneConfig, "distill": DistillConfig}
NOT_SEARCHABLE = {"output", "resume", "overwrite", "config"}
DATA_FILES = ("train_file", "dev_file", "test_file")


def parse_space(space: dict, cls, command: str) -> dict:
    """Validate the space: known options, non-empty ranges.

    Returns name → ("range", lo, hi, is_int) or ("choice", [...])."""
    if not space:
        raise DistilkitError("--space is empty: give at least one option with a range, e.g. {lr: [1e-5, 1e-3]}")
    valid = [f.name for f in dataclasses.fields(cls) if f.name not in NOT_SEARCHABLE]
    out = {}
    for name, spec in check_keys(space, valid, "--space", of=command, values=False).items():  # ranges, not values
        if isinstance(spec, dict) and "choices" in spec:
            choices = list(spec["choices"] or [])
            if not choices:
                raise DistilkitError(f"--space: {name!r} has no choices")
            out[name] = ("choice", choices)
        elif isinstance(spec, (list, tuple)) and len(spec) == 2 and all(isinstance(v, (int, float)) for v in spec):
            lo, hi = spec
            if not lo < hi:
                raise DistilkitError(
                    f"--space: {name!r} has an empty range [{lo}, {hi}]; the low end must be below the high end"
                )
            out[name] = ("range", lo, hi, isinstance(lo, int) and isinstance(hi, int))
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


def _base_options(cfg: SearchConfig, cls, space: dict) -> dict:
    """The fixed options of every trial: --base, then --options over it, each checked by the one loader and named
    in its errors. The options the space varies are left out: every trial sets its own."""
    sources = [(read_yaml(cfg.base, f"--base {cfg.base}: file not found"), cfg.base)] if cfg.base else []
    sources += [(cfg.options, "--options")] if cfg.options else []
    valid = [f.name for f in dataclasses.fields(cls)]
    base = {}
    for mapping, source in sources:
        fixed = {k: v for k, v in check_keys(mapping, valid, source, of=cfg.command).items() if k not in space}
        base.update(load_options(cls, fixed, source))
    return base


def _score(metrics: dict, command: str, metric: str) -> float:
    dev = metrics.get("dev")
    if dev is None:
        raise DistilkitError("search needs a dev split to score trials: give --dev-file or a --split with a dev part")
    scores = dev["student"] if command == "distill" else dev
    value = scores.get(metric, scores.get("entity", {}).get(metric))
    if value is None:
        raise DistilkitError(
            f"--metric {metric!r} is not in the dev metrics "
            f"({', '.join(k for k, v in scores.items() if isinstance(v, float))})"
        )
    return float(value)


def check_data_paths(base: dict) -> None:
    """Refuse, before any trial runs, data paths that would make every trial fail the same way.

    The loader has already checked each fixed option's name, type and range; the data paths are checked for
    existence only (reading and tokenizing the data is each trial's work).
    """
    from distilkit.data import builtin

    data = base.get("data")
    if data and not builtin.is_builtin(str(data)) and not Path(data).exists():
        raise DistilkitError(
            f"data {data}: no such file or folder, and not a built-in dataset "
            f"({', '.join(builtin.NAMES)}); every trial would fail"
        )
    for key in DATA_FILES:
        if base.get(key) and not Path(base[key]).is_file():
            raise DistilkitError(f"{key} {base[key]}: data file not found; every trial would fail")


class TrialFailed(Exception):
    """Raised by the objective once a trial's failure is recorded and cleaned up.

    The study catches this type only, so an error of the search itself (the dev metric to score with is
    missing: the same for every trial) and Ctrl-C still stop the search at once.
    """


def one_line(exc: BaseException) -> str:
    """The error as one line for trials.csv: a DistilkitError's message, else the exception type and its first line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = text if isinstance(exc, DistilkitError) else f"{type(exc).__name__}: {text}".rstrip(": ")
    return line if len(line) <= 300 else line[:297] + "..."


def run_trial(trial, run, cls, options: dict, folder: Path) -> None:
    """Run one trial into `folder`; on failure remove what it created, record the error and raise TrialFailed.

    Only paths that did not exist when the trial started are removed: a folder an earlier search left under the
    same name is not this trial's to delete.
    """
    created = [p for p in (folder, RunFolder(str(folder)).work) if not p.exists()]
    try:
        run(cls(**options), {**options})
    except Exception as exc:  # noqa: BLE001 — any failure of one trial, bug or bad value, must not end the search
        error = one_line(exc)
        trial.set_user_attr("error", error)
        if not isinstance(exc, DistilkitError):  # not a user error: the traceback is what finds the bug
            traceback.print_exception(exc, file=sys.stderr)
        for path in created:
            shutil.rmtree(path, ignore_errors=True)
        left = f"; {folder.name} from an earlier search is left as it was" if folder not in created else ""
        print(f"trial {trial.number} failed: {error}{left}; the search goes on", flush=True)
        raise TrialFailed(error) from exc


def trial_rows(trials, space: dict, metric: str) -> list[dict]:
    """One row per trial for trials.csv and the printed table: number, state, options, score, error."""
    rows = []
    for t in trials:
        row = {"trial": t.number, "state": t.state.name, **{name: t.params.get(name, "") for name in space}}
        row[metric] = t.value if t.value is not None else ""
        row["error"] = t.user_attrs.get("error", "")
        rows.append(row)
    return rows


def write_trials(rows: list[dict], output: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(output / "trials.csv", buffer.getvalue())
    columns = [k for k in rows[0] if k not in ("trial", "error")]
    show(f"\n{'trial':>5}  " + "  ".join(f"{k:>12}" for k in columns))
    for r in rows:
        cells = [
            f"{r[k]:>12.4g}" if isinstance(r[k], float) else f"{r[k]!s:>12}" if r[k] != "" else f"{'-':>12}"
            for k in columns
        ]
        show(f"{r['trial']:>5}  " + "  ".join(cells) + (f"  {r['error']}" if r["error"] else ""))


def search(cfg: SearchConfig, resolved: dict | None = None) -> Path:
    import optuna

    cls = COMMANDS[cfg.command]
    space = parse_space(cfg.space or {}, cls, cfg.command)
    base = _base_options(cfg, cls, space)
    if cfg.trials < 1:
        raise DistilkitError(f"--trials {cfg.trials}: must be at least 1")
    output = Path(cfg.output)
    check_writable_folder(output, "search")
    if (output / "best.yaml").exists() and not cfg.overwrite:
        raise DistilkitError(f"{output}: a finished search is there; pass --overwrite or choose another --output")
    check_data_paths(base)
    metric = cfg.metric or ("mse" if base.get("regression") else "accuracy")
    greater = metric not in ("mse", "mae", "loss")
    from distilkit.distillation.distill import distill
    from distilkit.training.finetune import finetune

    run = {"finetune": finetune, "distill": distill}[cfg.command]
    output_existed = output.exists()
    make_folder(output)
    if marker_kind(output) is None:
        mark(output, "search")

    def objective(trial):
        params = {name: _suggest(trial, name, spec) for name, spec in space.items()}
        folder = output / f"trial-{trial.number:03d}"
        print(f"\ntrial {trial.number}: {params}", flush=True)
        run_trial(trial, run, cls, {**base, **params, "output": str(folder), "overwrite": True}, folder)
        return _score(json.loads((folder / "metrics.json").read_text()), cfg.command, metric)

    # ERROR, not WARNING: Optuna logs each caught failure with a traceback; run_trial already said it in one line
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        direction="maximize" if greater else "minimize", sampler=optuna.samplers.TPESampler(seed=cfg.seed)
    )
    study.optimize(objective, n_trials=cfg.trials, catch=(TrialFailed,))
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        if not output_existed and output.is_dir() and [p.name for p in output.iterdir()] == [MARKER]:
            shutil.rmtree(output)  # the failed trials' folders are gone; leave no empty search folder behind
        first = study.trials[0]
        raise DistilkitError(
            f"all {len(study.trials)} trials failed, so there is no best option set; "
            f"trial {first.number}: {first.user_attrs.get('error', 'no error recorded')}"
        )
    write_trials(trial_rows(study.trials, space, metric), output)
    write_yaml(output / "best.yaml", {**base, **study.best_params})
    record_files(output)
    failed = sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials)
    show(
        f"\nbest dev {metric}: {study.best_value:.4f} (trial {study.best_trial.number}"
        + (f"; {failed} of {len(study.trials)} trials failed, see trials.csv" if failed else "")
        + f") → {output / 'best.yaml'}; "
        f"run it with distilkit {cfg.command} --config {output / 'best.yaml'} --output ..."
    )
    return output
