"""What a training run leaves for trackers and for Hugging Face's tools: `--report-to`, `trainer_state.json` and
the `*_results.json` files of the example scripts.

Trackers are the Trainer's own integrations (`report_to`): distilkit passes the names on and only places them.
TensorBoard writes into the run's `logs/` (the Trainer's default folder lies under the checkpoints, which are
removed when the run finishes); the others (wandb, mlflow, trackio) start a run named after the run folder.
Every tracker sees what `Trainer.log` logs, distilkit's loss parts (`loss_kd`, `loss_hidden_mse`, ...) included
(`Distiller.log` adds them there). A tracker whose package is missing is refused before anything is loaded.

`trainer_state.json` (the log history) is `TrainerState.save_to_json`'s; `train_results.json`,
`eval_results.json` (dev), `test_results.json` and `all_results.json` are laid out as `Trainer.save_metrics`
writes them. Paths in them are relative to the run folder, never the machine's absolute ones.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path
from urllib.parse import urlparse

from distilkit.errors import DistilkitError
from distilkit.files import json_text, write_atomic

# tracker → (the module its Trainer integration imports, what installs it)
TRACKER_PACKAGES = {
    "tensorboard": ("tensorboard", "pip install tensorboard"),
    "wandb": ("wandb", "pip install 'distilkit[trackers]' (or pip install wandb)"),
    "mlflow": ("mlflow", "pip install 'distilkit[trackers]' (or pip install mlflow-skinny)"),
    "trackio": ("trackio", "pip install 'distilkit[trackers]' (or pip install trackio)"),
}


def check_trackers(report_to: list[str]) -> None:
    """Refuse, before any work, a tracker whose package is not installed or that could not start."""
    for name in report_to:
        module, install = TRACKER_PACKAGES[name]
        if importlib.util.find_spec(module) is None:
            raise DistilkitError(f"--report-to {name}: the {module} package is not installed; {install}")
    if "mlflow" in report_to:
        check_mlflow()


def check_mlflow() -> None:
    """The two ways the Trainer's MLflow integration fails at its start, said before the run instead: turned off by
    DISABLE_MLFLOW_INTEGRATION, or pointed at a file store (`MLFLOW_TRACKING_URI=./mlruns`), which MLflow 3
    refuses unless MLFLOW_ALLOW_FILE_STORE is set."""
    if os.environ.get("DISABLE_MLFLOW_INTEGRATION", "").upper() in ("1", "TRUE", "YES", "ON"):
        raise DistilkitError(
            "--report-to mlflow: DISABLE_MLFLOW_INTEGRATION is set, which turns the Trainer's MLflow integration "
            "off; unset it or leave mlflow out of --report-to"
        )
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri or urlparse(uri).scheme not in ("", "file"):
        return
    from mlflow import environment_variables

    allow = getattr(environment_variables, "MLFLOW_ALLOW_FILE_STORE", None)  # absent before MLflow 3's refusal
    if allow is not None and not allow.get():
        raise DistilkitError(
            f"--report-to mlflow: MLFLOW_TRACKING_URI={uri} is a file store, which this MLflow refuses; set "
            "MLFLOW_ALLOW_FILE_STORE=true, or use a database store such as sqlite:///mlflow.db"
        )


def use_trackers(trainer, log_dir: Path, run_name: str) -> None:
    """Fresh callbacks for the trackers of `trainer.args.report_to`, for one training (a distillation stage is
    one): TensorBoard writing into `log_dir`, each other tracker starting a run named `run_name`. Fresh, because
    an integration ends its tracker's run when a training ends: a second stage would otherwise log into none."""
    from transformers.integrations import INTEGRATION_TO_CALLBACK

    from distilkit.training.trainer_setup import tensorboard_callback

    trainer.args.run_name = run_name
    for name in trainer.args.report_to or []:
        kind = INTEGRATION_TO_CALLBACK[name]
        trainer.pop_callback(kind)  # the Trainer's own instance (TensorBoard's would write under the checkpoints)
        trainer.add_callback(tensorboard_callback(log_dir) if name == "tensorboard" else kind())


def save_trainer_state(state, path: Path, run_folder: Path) -> None:
    """`state` (a TrainerState) as `TrainerState.save_to_json` writes it, its best checkpoint named relative to the
    run folder (`checkpoints/checkpoint-12`): the Trainer names it by the partial folder's path, which the finished
    run no longer has (nor the checkpoint itself: they are removed when the run finishes)."""
    best = state.best_model_checkpoint
    if best:
        best = os.path.relpath(Path(best).absolute(), Path(run_folder).absolute())
    fields = {**dataclasses.asdict(state), "best_model_checkpoint": best}
    write_atomic(path, json_text(fields, indent=2, sort_keys=True) + "\n")


def write_trainer_files(run_folder: Path, state, train: dict, evals: dict[str, dict]) -> None:
    """The Trainer's standard files in `run_folder`: `trainer_state.json` (its log history) and, as
    `Trainer.save_metrics` lays them out, `train_results.json` (`train`: TrainOutput.metrics with train_samples),
    one `<prefix>_results.json` per entry of `evals` (eval = dev, test: metrics named eval_accuracy, ...), and
    `all_results.json` with all of them."""
    save_trainer_state(state, run_folder / "trainer_state.json", run_folder)
    results = {"train": train, **evals}
    if "eval" in results and state.epoch is not None:  # Trainer.evaluate's metrics carry the epoch
        results["eval"] = {**results["eval"], "epoch": state.epoch}
    combined: dict = {}
    for split, metrics in results.items():
        write_atomic(run_folder / f"{split}_results.json", json_text(metrics, indent=4, sort_keys=True))
        combined.update(metrics)
    write_atomic(run_folder / "all_results.json", json_text(combined, indent=4, sort_keys=True))


def prefixed(metrics: dict, prefix: str) -> dict:
    """The numbers of a metrics dict (distilkit's names: accuracy) as the Trainer names them (eval_accuracy)."""
    return {f"{prefix}_{k}": v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
