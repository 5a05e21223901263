"""Several seeds (`--seeds N`) and K-fold cross-validation (`--folds K`) for `finetune` and `distill`.

Each repeat is an ordinary run of the command, written inside the run folder being built: `seeds/seed-<s>/` (with
`--seed s` and the data seed held at the first seed's, so every seed trains and is scored on the same examples) or
`folds/fold-<k>/` (with `--fold k`: fold k of the one labelled file is its test split, data/folds.py). They run one
after another; `--resume` keeps the repeats that finished and resumes the interrupted one. Then the run folder gets:

- `model/`: the repeat with the best dev score, never chosen by test (the first repeat where there is no dev
  split), hard-linked where the file system allows (no second copy of the weights);
- `metrics.json`: that repeat's metrics, and under `seeds` or `folds` every repeat's dev and test scores with
  their mean and sample standard deviation. For folds, `test` is the score pooled over the K test splits
  (evaluation/pooled.py): every example predicted once, by the fold model that did not train on it, with its
  bootstrap interval, and for `distill` the paired student − teacher comparison on the pooled predictions.

`distill --folds K` uses each fold's own teacher when `--teacher` is a `finetune --folds K` run with the same data
seed: fold k's teacher never saw fold k. Any other teacher may have seen the test folds; distilkit says so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
from pathlib import Path

from distilkit.console import show
from distilkit.errors import DistilkitError
from distilkit.evaluation.metrics import headline
from distilkit.runs import RunFolder
from distilkit.training.job import TrainingJob, run_training

LINK_FROM_BYTES = 1 << 20  # smaller files (the model card among them) are copied, so that rewriting one is safe


def run_repeated(make_job, cfg, resolved: dict | None) -> Path:
    """One run, or with --seeds N / --folds K (and no --fold) the repeats and their summary; the run folder."""
    if cfg.seeds == 1 and (cfg.folds is None or cfg.fold is not None):
        return run_training(make_job(cfg), cfg, resolved)
    return run_training(RepeatsJob(make_job, cfg), cfg, resolved)


def link_tree(source: Path, target: Path) -> None:
    """Copy a folder, hard-linking its large files where the file system allows."""

    def link_or_copy(src: str, dst: str) -> None:
        if os.path.getsize(src) >= LINK_FROM_BYTES:
            try:
                os.link(src, dst)
                return
            except OSError:
                pass
        shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy)


def folds_of(folder: Path) -> dict | None:
    """The `folds` summary of a finished cross-validation run folder, else None."""
    try:
        return json.loads((folder / "metrics.json").read_text()).get("folds")
    except (OSError, ValueError):
        return None


def fold_teacher(cfg, fold: int) -> str:
    """Fold `fold`'s teacher: that fold's model of a `finetune --folds` run given as --teacher, else --teacher."""
    folds = folds_of(Path(cfg.teacher)) if "," not in cfg.teacher else None
    if folds is None:
        return cfg.teacher
    if folds["k"] != cfg.folds or folds["data_seed"] != cfg.split_seed:
        raise DistilkitError(
            f"--teacher {cfg.teacher}: a cross-validation run with --folds {folds['k']} and data seed "
            f"{folds['data_seed']}; distil with the same --folds and --data-seed (or --seed), so that each fold's "
            "teacher never saw its fold's test split"
        )
    return str(Path(cfg.teacher) / "folds" / f"fold-{fold}")


def leakage_warning(cfg) -> str | None:
    """Said when `distill --folds` has a teacher that is not a cross-validation run of the same folds."""
    if not hasattr(cfg, "teacher") or (folds_of(Path(cfg.teacher)) if "," not in cfg.teacher else None):
        return None
    return (
        f"--folds {cfg.folds}: the teacher {cfg.teacher} is one model for all folds; if it was trained on examples "
        "of this data, each fold's test split holds examples it saw and the scores are optimistic. For a clean "
        f"estimate, fine-tune it with finetune --folds {cfg.folds} on the same data and seed and give that run folder "
        "as --teacher: each fold then uses its own teacher."
    )


def _shown(value: float | None, sd: float | None = None) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" + (f" ± {sd:.4f}" if sd is not None else "")


def summary_lines(kind: str, metrics: dict) -> list[str]:
    """The repeats' table: each run's dev and test score, mean ± sd, the run kept; for folds the pooled score."""
    from distilkit.evaluation.intervals import describe

    block = metrics[kind]
    lines = [f"{kind}: {block['metric']} of each run", f"  {'run':<12}{'dev':<22}test"]
    for row in block["runs"]:
        kept = "   ← kept" if row["run"] == block["chosen"] else ""
        lines.append(f"  {row['run']:<12}{_shown(row['dev']):<22}{_shown(row['test'])}{kept}")
    mean, sd = block["mean"], block["sd"]
    lines.append(f"  {'mean ± sd':<12}{_shown(mean['dev'], sd['dev']):<22}{_shown(mean['test'], sd['test'])}")
    lines.append(f"kept: {block['chosen']}, by {block['chosen_by']}")
    if kind == "folds":
        test = metrics["test"]
        scores = test.get("student", test)
        low, high = scores.get("intervals", {}).get(block["metric"]) or (None, None)
        shown = f" [{low:.4f}, {high:.4f}]" if low is not None else ""
        who = "student " if "student" in test else ""
        lines.append(
            f"pooled over {block['k']} folds ({block['examples']} test predictions): {who}{block['metric']} "
            f"{headline(scores, block['metric']):.4f}{shown}"
        )
        if "paired" in test:
            lines.append(f"student − teacher (paired, pooled): {describe(test['paired'])}")
    return lines


def spread(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None where there are no values; sd 0 for one)."""
    kept = [v for v in values if v is not None]
    if not kept:
        return None, None
    return statistics.fmean(kept), statistics.stdev(kept) if len(kept) > 1 else 0.0


class RepeatsJob(TrainingJob):
    """The repeats of one command as one training job (training/job.py owns the run folder around them)."""

    def __init__(self, make_job, cfg):
        self.make_job, self.cfg = make_job, cfg
        self.kind = "folds" if cfg.folds else "seeds"

    def repeats(self, work: Path) -> list[tuple[str, object]]:
        """(name, config) of each repeat, its output inside `work` (planned once, in `prepare`)."""
        cfg, base = self.cfg, {"overwrite": False, "seeds": 1}
        if self.kind == "seeds":
            seeds = range(cfg.seed, cfg.seed + cfg.seeds)
            return [
                (
                    f"seed-{s}",
                    dataclasses.replace(cfg, **base, seed=s, data_seed=cfg.split_seed, output=self._out(work, s)),
                )
                for s in seeds
            ]
        out = []
        for k in range(cfg.folds):
            teacher = {"teacher": fold_teacher(cfg, k)} if hasattr(cfg, "teacher") else {}
            out.append((f"fold-{k}", dataclasses.replace(cfg, **base, **teacher, fold=k, output=self._out(work, k))))
        return out

    def _out(self, work: Path, i: int) -> str:
        return str(work / self.kind / f"{self.kind[:-1]}-{i}")

    def prepare(self) -> None:
        """Prepare the first repeat still to run: its models and data are checked before the run folder exists."""
        from distilkit.training.trainer_setup import metric_choice

        cfg = self.cfg
        if getattr(cfg, "general", False) and cfg.folds:
            raise DistilkitError(f"--folds {cfg.folds}: general distillation has no labels to cross-validate; drop it")
        # the partial folder run_training builds in: the repeats' outputs are known before it exists
        self.planned = self.repeats(RunFolder(cfg.output).work)
        todo = [(name, sub) for name, sub in self.planned if not (Path(sub.output) / "metrics.json").exists()]
        self.first_name, first_cfg = todo[0] if todo else (None, self.planned[0][1])
        self.warning = leakage_warning(cfg) if self.kind == "folds" else None
        if self.warning:
            print(f"WARNING: {self.warning}", flush=True)
        # a copy: prepare fills in defaults (max_length) on its config, and run_training must record the repeat's
        # options as given, as the repeats prepared later do (or a --resume of this repeat would see other options)
        self.first = self.make_job(dataclasses.replace(first_cfg))
        self.first.prepare()
        self.first.prepared = True
        data = self.first.data
        self.task, self.regression, self.labels, self.bio = data.task, data.regression, data.labels, data.is_bio
        self.metric, self.greater = metric_choice(data, cfg) if data.task != "general" else ("loss", False)

    def train(self, work: Path, run) -> None:
        repeats = self.planned
        for i, (name, sub) in enumerate(repeats):
            if (Path(sub.output) / "metrics.json").exists():
                print(f"\n{name}: finished earlier, kept", flush=True)
                continue
            print(f"\n=== {self.kind[:-1]} {i + 1} of {len(repeats)}: {name} ===", flush=True)
            if name == self.first_name and self.first is not None:
                job, self.first = self.first, None  # prepared by prepare(); its models are freed once it has run
            else:  # any other repeat, including one that --overwrite emptied after prepare() found it finished
                job = self.make_job(sub)
            job.shows_summary = False
            run_training(job, sub, None)
            self.is_main = job.is_main

    def save(self, work: Path) -> None:
        if self.is_main:
            self.runs = [
                (name, json.loads((Path(sub.output) / "metrics.json").read_text())) for name, sub in self.planned
            ]
            self.chosen = self.choose()
            link_tree(Path(dict(self.planned)[self.chosen].output) / "model", work / "model")

    def score(self, metrics: dict, split: str) -> float | None:
        scores = metrics.get(split)
        if not scores:
            return None
        return headline(scores.get("student", scores), self.metric)

    def choose(self) -> str:
        """The repeat with the best dev score; the first one where there is no dev split."""
        dev = [(self.score(m, "dev"), name) for name, m in self.runs]
        if any(score is None for score, _ in dev):
            return self.runs[0][0]
        sign = 1 if self.greater else -1
        return max(dev, key=lambda scored: sign * scored[0])[1]  # max keeps the first of equal scores

    def results(self, work: Path) -> dict:
        if not self.is_main:
            return {}
        chosen = dict(self.runs)[self.chosen]
        rows = [{"run": name, "dev": self.score(m, "dev"), "test": self.score(m, "test")} for name, m in self.runs]
        block: dict = {"metric": self.metric, "runs": rows, "chosen": self.chosen}
        block["chosen_by"] = f"dev {self.metric}" if rows[0]["dev"] is not None else "first (no dev split)"
        block["mean"], block["sd"] = {}, {}
        for split in ("dev", "test"):
            block["mean"][split], block["sd"][split] = spread([r[split] for r in rows])
        metrics = {**chosen, self.kind: block}
        if self.kind == "folds":
            block.update(k=self.cfg.folds, data_seed=self.cfg.split_seed)
            if self.warning:
                block["warning"] = self.warning
            metrics["test"] = self.pooled()
            block["examples"] = metrics["test"].get("examples", metrics["test"].get("student", {}).get("examples"))
        return metrics

    def pooled(self) -> dict:
        """The test scores pooled over the folds' predictions (and, for distill, the pair's comparison)."""
        from distilkit.evaluation.pooled import pooled_test

        folders = [Path(sub.output) for _, sub in self.planned]
        return pooled_test(folders, self.task, self.regression, self.labels, self.bio)

    def write_card(self, work: Path, metrics: dict, config: dict) -> None:
        self.make_job(self.cfg).write_card(work, metrics, config)

    def summary(self, final: Path, metrics: dict) -> None:
        show("\n" + "\n".join(summary_lines(self.kind, metrics)))
        show(f"\nrun folder: {final} (model in {final / 'model'}: {self.chosen}; each run in {final / self.kind})")
