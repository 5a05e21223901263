"""The benchmark suite: distillation with distilkit's defaults on several tasks, and a gate against regressions.

    python benchmarks/suite.py run [--tasks ...] [--students kd tinybert] [--seeds 3] [--variant NAME]
    python benchmarks/suite.py table [--variant NAME]
    python benchmarks/suite.py compare A B      # two variants on the dev splits, by the decision rule below
    python benchmarks/suite.py gate             # exit 1 when a task lost retention against the accepted results
    python benchmarks/suite.py accept [--variant defaults]

Tasks (benchmarks/suite_tasks.py): bbc-news articles, their titles (short texts), Brown genre (15 classes),
title-article pairs and Brown POS tags, each with fixed document-grouped splits. A MiniLM-L6 teacher is fine-tuned
once per task (the demo's recipe: 2 epochs, lr 1e-4, batch 32) and kept; the students are 3-layer students built
from teacher layers 0, 2, 4, one per method (`kd`: 2 epochs; `tinybert`: 2 intermediate + 2 prediction epochs;
lr 1e-4), each with `--seeds N` (seeds 42, 43, ...; the same splits for every seed). Every run scores the student
and the teacher on the same examples, so retention = student / teacher with the paired interval of their
difference (bootstrap over the task's groups: `--group-column group`).

A variant (`--variant`) is the defaults plus the arguments in VARIANTS; its teacher is shared with the defaults
unless the variant changes the teacher's options too (TEACHER_ARGS). Results: benchmarks/results/suite.json, one
entry per variant; the accepted results the gate compares with: benchmarks/results/suite_accepted.json.

Decision rule for a default (fixed before the runs; `compare` applies it): per task, the mean over seeds of the
dev retention; the candidate with the higher mean of that over the tasks wins, unless on some task it is below the
other by more than that task's dev interval (the half-width of the paired interval, averaged over seeds): then
the candidate whose worst task loses least wins. A difference of the mean under 0.1 point keeps the current
default. Test splits are never looked at when choosing.

Gate: a task × student fails when its mean test retention is below the accepted one by more than the accepted
interval's half-width (the test examples are the same for every seed, so the seeds' mean keeps one seed's
test-set noise: the interval is the seeds' mean half-width, not divided by sqrt(seeds)).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from common import RESULTS, RUNS, run_distilkit, save, shown
from suite_tasks import TASKS, Sizes, build_all

FIRST_SEED = 42
TEACHER = "--lr 1e-4 --batch-size 32".split()  # + the task's --epochs (suite_tasks.Task.teacher_epochs)
STUDENTS = {
    "kd": "--student 3 --method kd --epochs 2 --lr 1e-4".split(),
    "tinybert": "--student 3 --method tinybert --intermediate-epochs 2 --epochs 2 --lr 1e-4".split(),
}
# variant → extra arguments of the students; a variant's teacher gets TEACHER_ARGS[variant] (default: none, so
# it shares the defaults' teacher)
VARIANTS = {
    "defaults": [],
    "uniform-map": ["--layer-map", "uniform"],
    "fp32": ["--precision", "fp32"],
    "t1": ["--temperature", "1"],
    "relative-losses": ["--normalize-losses", "true"],
    "attention-probabilities": ["--attention-probabilities", "true"],
}
TEACHER_ARGS = {"fp32": ["--precision", "fp32"]}


@dataclass(frozen=True)
class Suite:
    """Where the suite works and writes, and what it trains (the test runs it small, on a tiny model)."""

    work: Path = RUNS / "suite"
    results: Path = RESULTS
    teacher_model: str = "minilm-l6"
    sizes: Sizes = Sizes()
    force: bool = False  # distil even from a teacher at chance level (the test's tiny random one)

    @property
    def accepted(self) -> Path:
        return self.results / "suite_accepted.json"

    def teacher_folder(self, task: str, variant: str) -> Path:
        return self.work / task / ("teacher" if variant not in TEACHER_ARGS else f"teacher-{variant}")


def data_args(files: dict[str, Path], task: str) -> list:
    return [
        "--train-file",
        files["train"],
        "--dev-file",
        files["dev"],
        "--test-file",
        files["test"],
        "--max-length",
        TASKS[task].max_length,
        "--group-column",
        "group",
    ]


def stamp(files: dict[str, Path], argv: list) -> str:
    """The data and the command a run was made with: a run with other data (other sizes, a changed builder) or
    another command is not reused."""
    digest = hashlib.sha256(shown(argv).encode())
    for split in sorted(files):
        digest.update(files[split].read_bytes())
    return digest.hexdigest()[:16]


def is_current(folder: Path, made_with: str) -> bool:
    path = folder / "suite-stamp.txt"
    return (folder / "metrics.json").exists() and path.exists() and path.read_text() == made_with


def ensure_teacher(suite: Suite, task: str, variant: str, files: dict[str, Path]) -> tuple[Path, str, float | None]:
    """The task's fine-tuned teacher (trained once, then reused), its stamp and the seconds it took (None: reused)."""
    folder = suite.teacher_folder(task, variant)
    argv = ["finetune", "--model", suite.teacher_model, *TEACHER, "--epochs", TASKS[task].teacher_epochs]
    argv += [*TEACHER_ARGS.get(variant, []), *data_args(files, task), "--output", folder]
    made_with = stamp(files, argv)
    if is_current(folder, made_with):
        return folder, made_with, None
    print(f"suite: {shown(argv)}", flush=True)
    seconds = run_distilkit([*argv, "--overwrite"])
    (folder / "suite-stamp.txt").write_text(made_with)
    return folder, made_with, seconds


def retention_of(split: dict) -> dict:
    """Retention and its interval from a run's paired student-vs-teacher comparison on one split."""
    metric = split["metric"]
    teacher = split["teacher"][metric]
    low, high = split["paired"].get("interval", [None, None])
    out = {"teacher": round(teacher, 4), "student": round(split["student"][metric], 4)}
    out["retention"] = round(split["retention"], 4)
    if low is not None and teacher:
        out["interval"] = [round((teacher + low) / teacher, 4), round((teacher + high) / teacher, 4)]
    return out


def summary_of(run: Path, seeds: int) -> dict:
    """Per seed: dev and test retention with intervals; and the means over seeds."""
    per_seed = {}
    for k in range(seeds):
        folder = run / "seeds" / f"seed-{FIRST_SEED + k}" if seeds > 1 else run
        m = json.loads((folder / "metrics.json").read_text())
        per_seed[str(FIRST_SEED + k)] = {s: retention_of(m[s]) for s in ("dev", "test") if m.get(s)}
    out: dict = {"metric": m["test"]["metric"], "seeds": per_seed}
    for split in ("dev", "test"):
        rows = [r[split] for r in per_seed.values() if split in r]
        halves = [(r["interval"][1] - r["interval"][0]) / 2 for r in rows if "interval" in r]
        out[split] = {
            "retention": round(mean(r["retention"] for r in rows), 4),
            "half_width": round(mean(halves), 4) if halves else None,
            "teacher": round(mean(r["teacher"] for r in rows), 4),
            "student": round(mean(r["student"] for r in rows), 4),
        }
    return out


def run_suite(suite: Suite, variant: str, tasks: list[str], students: list[str], seeds: int, rerun: bool) -> None:
    """Teachers (once) and students of `variant` on `tasks`; results merged into <results>/suite.json."""
    files = build_all(suite.work / "data", suite.sizes)
    stored = read_json(suite.results / "suite.json").get(variant, {})
    if stored and stored.get("seeds") != seeds:
        stored = {}  # results over another number of seeds are not mixed with these
    entries = dict(stored.get("tasks", {}))
    for task in tasks:
        teacher, teacher_stamp, seconds = ensure_teacher(suite, task, variant, files[task])
        entry = entries.setdefault(task, {})
        if seconds is not None:
            entry["teacher_seconds"] = round(seconds)
        for student in students:
            out = suite.work / task / f"{student}-{variant}"
            argv = ["distill", "--teacher", teacher, *STUDENTS[student], *VARIANTS[variant]]
            argv += [*data_args(files[task], task), "--seed", FIRST_SEED, "--output", out]
            argv += ["--seeds", seeds] if seeds > 1 else []
            argv += ["--force"] if suite.force else []
            made_with = stamp(files[task], [*argv, teacher_stamp])
            if rerun or seconds is not None or not is_current(out, made_with):
                print(f"suite: {shown(argv)}", flush=True)
                entry.setdefault("seconds", {})[student] = round(run_distilkit([*argv, "--overwrite"]))
                (out / "suite-stamp.txt").write_text(made_with)
            entry[student] = {"command": shown(argv), **summary_of(out, seeds)}
        save("suite", variant, {"seeds": seeds, "tasks": entries}, suite.results)
    print_table(load_variant(suite.results / "suite.json", variant), variant)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def load_variant(path: Path, variant: str) -> dict:
    data = read_json(path)
    if variant not in data:
        raise SystemExit(
            f"{path}: no results for variant {variant!r}; run: python benchmarks/suite.py run --variant {variant}"
        )
    return data[variant]


def rows_of(variant: dict) -> list[tuple[str, str, dict]]:
    return [
        (task, student, entry[student])
        for task, entry in variant["tasks"].items()
        for student in STUDENTS
        if student in entry
    ]


def print_table(variant: dict, name: str) -> None:
    print(f"\n{name} ({variant['seeds']} seeds; retention = student / teacher, mean over seeds ± interval half-width)")
    header = ("task", "student", "teacher test", "student test", "test retention", "dev retention")
    print("{:10} {:9} {:>12} {:>12} {:>16} {:>15}".format(*header))
    for task, student, r in rows_of(variant):
        test, dev = r["test"], r["dev"]
        print(
            f"{task:10} {student:9} {test['teacher']:12.2%} {test['student']:12.2%} "
            f"{test['retention']:9.2%} ±{test['half_width'] or 0:.2%} "
            f"{dev['retention']:8.2%} ±{dev['half_width'] or 0:.2%}"
        )


def decide(current: dict, candidate: dict, student: str) -> dict:
    """The decision rule of the module docstring, on dev retention, for one student method."""
    tasks = [t for t in current["tasks"] if student in current["tasks"][t] and student in candidate["tasks"].get(t, {})]
    dev = {t: (current["tasks"][t][student]["dev"], candidate["tasks"][t][student]["dev"]) for t in tasks}
    gain = {t: b["retention"] - a["retention"] for t, (a, b) in dev.items()}
    width = {t: max(a["half_width"] or 0, b["half_width"] or 0) for t, (a, b) in dev.items()}
    mean_gain = mean(gain.values()) if gain else 0.0
    candidate_hurts = [t for t in tasks if gain[t] < -width[t]]
    current_hurts = [t for t in tasks if gain[t] > width[t]]
    if abs(mean_gain) < 0.001:
        verdict, reason = "current", "mean dev retention within 0.1 point: keep the current default"
    elif mean_gain > 0 and not candidate_hurts or mean_gain < 0 and not current_hurts:
        verdict = "candidate" if mean_gain > 0 else "current"
        winner = "the candidate" if mean_gain > 0 else "the current default"
        reason = (
            f"{winner} has the higher mean dev retention ({100 * abs(mean_gain):.2f} points) and is worse on no "
            "task beyond its interval"
        )
    else:
        worst_candidate, worst_current = min(gain.values()), -max(gain.values())
        verdict = "candidate" if worst_candidate > worst_current else "current"
        reason = f"a task loses beyond its interval either way; the smaller worst loss wins ({verdict})"
    return {
        "student": student,
        "tasks": tasks,
        "dev_gain": {t: round(g, 4) for t, g in gain.items()},
        "dev_half_width": {t: round(w, 4) for t, w in width.items()},
        "mean_dev_gain": round(mean_gain, 4),
        "verdict": verdict,
        "reason": reason,
    }


def compare_variants(suite: Suite, current_name: str, candidate_name: str) -> list[dict]:
    path = suite.results / "suite.json"
    current, candidate = load_variant(path, current_name), load_variant(path, candidate_name)
    decisions = [decide(current, candidate, s) for s in STUDENTS if any(s in e for e in candidate["tasks"].values())]
    for d in decisions:
        print(f"{candidate_name} vs {current_name}, {d['student']}: {d['verdict']} — {d['reason']}")
        for t in d["tasks"]:
            print(f"  {t:10} dev retention {d['dev_gain'][t]:+.2%} (interval ±{d['dev_half_width'][t]:.2%})")
    save("suite_decisions", f"{candidate_name} vs {current_name}", {"decisions": decisions}, suite.results)
    return decisions


def accept(suite: Suite, variant: str) -> None:
    """Make `variant`'s current results the gate's reference."""
    data = read_json(suite.accepted)
    data[variant] = load_variant(suite.results / "suite.json", variant)
    suite.accepted.write_text(json.dumps(data, indent=2) + "\n")
    print(f"accepted {variant} as the gate's reference: {suite.accepted}")


def paired_evaluation(suite: Suite, task: str, files: dict[str, Path], model: Path, reference: Path) -> dict:
    """`model` against `reference` on the task's dev and test splits, example by example (distilkit evaluate
    --compare: the paired interval over groups, McNemar where it applies)."""
    out = {}
    for split in ("dev", "test"):
        folder = suite.work / "paired" / ("-".join(model.relative_to(suite.work).parts) + f"-{split}")
        argv = ["evaluate", "--model", model, "--compare", reference, *data_args(files, task), "--eval-split", split]
        run_distilkit([*argv, "--output", folder, "--overwrite"])
        m = json.loads((folder / "metrics.json").read_text())
        paired = m["paired"]
        out[split] = {
            "model": round(m[paired["metric"]], 4),
            "reference": round(paired["compared_score"], 4),
            "difference": paired["difference"],
            "interval": paired.get("interval"),
            "significant": paired["significant"],
        }
    return out


def compare_precision(suite: Suite, tasks: list[str], students: list[str], seeds: int) -> None:
    """The fp32 variant against the defaults (bf16 autocast where the CPU has it): each task's teacher, and each
    seed's student, paired on the same dev and test examples."""
    files = build_all(suite.work / "data", suite.sizes)
    for task in tasks:
        teachers = suite.teacher_folder(task, "fp32"), suite.teacher_folder(task, "defaults")
        result = {"teacher": paired_evaluation(suite, task, files[task], *teachers)}
        for student in students:
            for k in range(seeds):
                seed = f"seed-{FIRST_SEED + k}"
                fp32, bf16 = (
                    suite.work / task / f"{student}-{v}" / "seeds" / seed / "model" for v in ("fp32", "defaults")
                )
                result[f"{student}@{seed}"] = paired_evaluation(suite, task, files[task], fp32, bf16)
        save("suite_precision", task, result, suite.results)
        for name, r in result.items():
            dev, test = (f"{r[s]['difference']:+.2%} {r[s]['interval']}" for s in ("dev", "test"))
            print(f"{task:9} {name:18} fp32 − bf16: dev {dev}, test {test}")


def gate_failures(current: dict, accepted: dict) -> list[str]:
    """Task × student rows whose mean test retention fell below the accepted one beyond its interval."""
    failures = []
    for task, student, old in rows_of(accepted):
        new = current["tasks"].get(task, {}).get(student)
        if new is None:
            failures.append(f"{task}/{student}: accepted but not in the current results; run the suite for it")
            continue
        floor = old["test"]["retention"] - (old["test"]["half_width"] or 0)
        if new["test"]["retention"] < floor:
            failures.append(
                f"{task}/{student}: test retention {new['test']['retention']:.2%} < {floor:.2%} "
                f"(accepted {old['test']['retention']:.2%} − its interval ±{old['test']['half_width'] or 0:.2%})"
            )
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["run", "table", "compare", "precision", "gate", "accept"])
    parser.add_argument("variants", nargs="*", help="compare: the current and the candidate variant")
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--students", nargs="+", choices=list(STUDENTS), default=list(STUDENTS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variant", choices=list(VARIANTS), default="defaults")
    parser.add_argument("--rerun", action="store_true", help="train the students again (the gate's run)")
    parser.add_argument("--work", type=Path, default=Suite.work, help="run folders and the tasks' data")
    parser.add_argument("--results", type=Path, default=Suite.results, help="suite.json and suite_accepted.json")
    parser.add_argument("--teacher-model", default=Suite.teacher_model)
    parser.add_argument("--sizes", default="1000,500,500", help="most examples in train,dev,test")
    parser.add_argument("--force", action="store_true", help="distil from a teacher at chance level too")
    args = parser.parse_args(argv)
    train, dev, test = (int(x) for x in args.sizes.split(","))
    suite = Suite(args.work, args.results, args.teacher_model, Sizes(train, dev, test), args.force)
    if args.action == "run":
        run_suite(suite, args.variant, args.tasks, args.students, args.seeds, args.rerun)
    elif args.action == "table":
        print_table(load_variant(suite.results / "suite.json", args.variant), args.variant)
    elif args.action == "compare":
        if len(args.variants) != 2:
            parser.error("compare needs two variants: the current default's and the candidate's")
        compare_variants(suite, *args.variants)
    elif args.action == "precision":
        compare_precision(suite, args.tasks, args.students, args.seeds)
    elif args.action == "accept":
        accept(suite, args.variant)
    else:
        failures = gate_failures(
            load_variant(suite.results / "suite.json", args.variant), load_variant(suite.accepted, args.variant)
        )
        for line in failures:
            print(f"gate: {line}")
        print("gate: FAILED" if failures else "gate: passed (no task lost retention beyond its interval)")
        return 1 if failures else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
