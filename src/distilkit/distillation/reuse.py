"""`distill --intermediate-from RUN`: skip a two-stage method's intermediate stage and start the prediction stage
from the weights an earlier run saved after it (`RUN/stage-intermediate.safetensors`: the student and the learned
projections). TinyBERT's own code runs the two stages as two commands in the same way; here it lets a user re-tune
the short prediction stage (its epochs, learning rate, α, T, label losses) without repeating the long first one.

The reuse is exact or refused. The earlier run recorded the options it was started with (resume-options.json, data
files by content); every option that shapes the intermediate stage must be the same now, so the reused weights are
the ones a full run with the current options would have reached at the end of that stage. Only the options below
may differ.
"""

from __future__ import annotations

import json
from pathlib import Path

from distilkit.errors import DistilkitError
from distilkit.runs import RESUME_FREE, option_changes, resume_fingerprint, written_by_distilkit

# Options that act only after the intermediate stage (or only on where and how the run is written and evaluated).
# The epochs and learning rate are compared as the intermediate stage's own (--intermediate-epochs or --epochs).
STAGE_FREE = RESUME_FREE | {
    "output",
    "intermediate_from",
    "epochs",
    "lr",
    "intermediate_epochs",
    "intermediate_lr",
    "alpha",
    "temperature",
    "losses",
    "metric",
    "early_stopping",
    "save_steps",
    "dev_file",
    "dev_file (contents)",
    "test_file",
    "test_file (contents)",
    "max_eval_samples",
}
PATH_KEYS = ("teacher", "student", "data", "train_file", "unlabeled", "augment_model", "plugins")


def intermediate_options(fingerprint: dict) -> dict:
    """The recorded options that decide the intermediate stage's weights, paths made absolute where they exist."""
    kept = {k: v for k, v in fingerprint.items() if k not in STAGE_FREE}
    kept["intermediate epochs"] = fingerprint.get("intermediate_epochs") or fingerprint.get("epochs")
    kept["intermediate lr"] = fingerprint.get("intermediate_lr") or fingerprint.get("lr")
    for key in PATH_KEYS:
        value = kept.get(key)
        if isinstance(value, str) and value and Path(value).exists():
            kept[key] = str(Path(value).resolve())
    return kept


def stage_files(run: str, options: dict, stages: list) -> dict[str, Path]:
    """{stage name: weights file} for the stages before the last, from the earlier run folder `run`, after
    checking that its intermediate stage was trained with the options given now."""
    folder, option = Path(run), "--intermediate-from"
    if len(stages) < 2:
        raise DistilkitError(
            f"{option} {run}: --method {options.get('method')} has one stage, so there is no intermediate stage to "
            "reuse; use it with a two-stage method (tinybert)"
        )
    if not folder.exists():
        raise DistilkitError(f"{option} {run}: not found; give the --output folder of an earlier distill run")
    if not folder.is_dir() or not written_by_distilkit(folder):
        raise DistilkitError(f"{option} {run}: not a distilkit run folder; give the --output of an earlier distill")
    files = {s.name: folder / f"stage-{s.name}.safetensors" for s in stages[:-1]}
    missing = [p.name for p in files.values() if not p.is_file()]
    saved_file = folder / "resume-options.json"
    if missing or not saved_file.is_file():
        raise DistilkitError(
            f"{option} {run}: {(missing or [saved_file.name])[0]} is missing; a finished distill run of a two-stage "
            "method keeps its intermediate stage's weights (stage-*.safetensors) and options (resume-options.json)"
        )
    try:
        saved = intermediate_options(json.loads(saved_file.read_text()))
    except (OSError, ValueError, AttributeError) as err:
        raise DistilkitError(f"{option} {run}: cannot read {saved_file.name} ({err}); rerun the first stage") from None
    changes = option_changes(saved, intermediate_options(resume_fingerprint(options)))
    if changes:
        raise DistilkitError(
            f"{option} {run}: that run's intermediate stage was trained with other options ({changes}); give the "
            "same ones (only the prediction stage's may change), or drop --intermediate-from to train both stages"
        )
    return files


def check_fits(files: dict[str, Path], model) -> None:
    """The saved tensors must be exactly the wrapped student's (names and shapes): refused before anything is
    written, rather than failing half-way through the run."""
    from safetensors import safe_open

    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for path in files.values():
        try:
            with safe_open(str(path), "pt") as f:
                found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except Exception as err:  # safetensors raises its own error types for damaged files
            raise DistilkitError(f"--intermediate-from: {path} is not a readable safetensors file ({err})") from None
        wrong = sorted(k for k in set(expected) | set(found) if expected.get(k) != found.get(k))
        if wrong:
            raise DistilkitError(
                f"--intermediate-from: {path} does not fit this student ({wrong[0]}: saved "
                f"{found.get(wrong[0])}, expected {expected.get(wrong[0])}); give the run this student came from"
            )
