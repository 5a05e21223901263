"""One skeleton for the commands that train into a run folder (`finetune`, `distill`).

Order matters for the "nothing half-written" rule: options, output folder, models and data are all checked
(`prepare`) before the run folder is created; training then happens in `.<name>.partial/` and the folder is
renamed into place only when the model, metrics and config are written. A failure on the way (bad input, a full
disk, an error in the user's code) removes the partial folder (`RunFolder.fail`). Under `accelerate launch` every
rank trains and evaluates, only rank 0 writes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch

from distilkit.config import options_of
from distilkit.runs import RunFolder
from distilkit.training.tracking import check_trackers


class TrainingJob(ABC):
    """The steps a training command fills in; `run_training` calls them in this order."""

    is_main = True  # set by `train`: False on the ranks of a multi-process run that do not write
    shows_summary = True  # False for the repeats of --seeds / --folds: their table says it all at the end
    prepared = False  # True when `prepare` ran already (training/repeats.py prepares the first repeat early)

    @abstractmethod
    def prepare(self) -> None:
        """Load and check models and data; print what will be trained. Nothing is written yet."""

    @abstractmethod
    def train(self, work: Path, run: RunFolder) -> None:
        """Train inside the partial run folder `work` (checkpoints under it; `run` finds one to resume)."""

    @abstractmethod
    def save(self, work: Path) -> None:
        """Write `work/model/`: a plain model folder (or an adapter) with its tokenizer."""

    @abstractmethod
    def results(self, work: Path) -> dict:
        """The run's metrics (and plots beside them); every rank calls it, as evaluation may be collective."""

    @abstractmethod
    def summary(self, final: Path, metrics: dict) -> None:
        """Print the closing table once the run folder is in place."""

    def write_card(self, work: Path, metrics: dict, config: dict) -> None:
        """Write the model card, `work/model/README.md` (hub/card_kinds.py), from the run's metrics and options."""


def process_state():
    """accelerate's view of this process: its rank, whether it is the main one, a barrier. One plain process unless
    launched by `accelerate launch` or torchrun (then the Trainer shares this state)."""
    from accelerate import PartialState

    from distilkit.training.trainer_setup import cpu_processes

    return PartialState(cpu=cpu_processes())


def run_training(job: TrainingJob, cfg, resolved: dict | None) -> Path:
    """check → prepare → train → save → results → finish: the life of a training run folder."""
    run = RunFolder(cfg.output, overwrite=cfg.overwrite, resume=cfg.resume)
    state = process_state()
    options = resolved if resolved is not None else options_of(cfg)
    if state.is_main_process:  # the others would find the partial folder that the main process made meanwhile
        run.check(options)  # a resume with other options is refused before models load and data is tokenized
    check_trackers(cfg.report_to)  # a tracker that is not installed: said now, not when training starts
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if not job.prepared:
        job.prepare()
    with state.main_process_first():  # one process creates (or reopens) the run folder; the others then use it
        work = run.prepare(options) if state.is_main_process else run.work
    try:
        job.train(work, run)
        job.save(work)
        metrics = job.results(work)
        if job.is_main:
            effective = {"max_length": cfg.max_length} if "max_length" in options else {}  # the default's value
            run.write_results(metrics, {**options, **effective})
            job.write_card(work, metrics, {**options, **effective})
        if not job.is_main:
            return run.final
        final = run.finish()
    except BaseException as err:
        if state.is_main_process:
            run.fail(err)  # cleans up, then raises (one line where it can)
        raise
    if job.shows_summary:
        job.summary(final, metrics)
    return final
