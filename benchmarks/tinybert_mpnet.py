"""Benchmark: the TinyBERT paper's setting with real weights — a 12-layer, 768-wide teacher distilled into the
TinyBERT-4 shape, and the int8 student's speed-up over the fp32 teacher at batch 1.

    make mpnet                                   # once: assembles all-mpnet-base-v2 into the cache
    python benchmarks/tinybert_mpnet.py [--only JOB ...] [--rounds 30] [--int8-from JOB] [--seed 42] [--tag T]

The teacher is all-mpnet-base-v2 (MPNet, 12L-768H-12A, 110M parameters; the only BERT-base-sized encoder with
real weights on this machine) fine-tuned on bbc-news. Jobs, in order, each written to
benchmarks/results/tinybert_mpnet.json as it finishes:
- teacher: `finetune --model all-mpnet-base-v2` (3 epochs, lr 5e-5, batch 32, 128 tokens);
- task: task distillation into a random-init 4L-312H-12A-1200F MPNet student (TinyBERT method, uniform layer map
  0:0,1:3,2:6,3:9,4:12, 6 intermediate + 4 prediction epochs, lr 5e-4: the ablation's schedule; the teacher's
  outputs cached, --cache-max-gb 6);
- general / task-g (only with --only general task-g, about an hour more): general distillation of the student from
  the pre-trained all-mpnet-base-v2 on half the ablation's corpus (--epochs 0.5, teacher live), then
  task's distillation of that student;
- task-d (only with --only task-d, after general): task-g with one augmented copy per article (--augment 1), the
  ablation's job d; task-e (likewise): task-g with the ablation's unlabeled transfer set (--unlabeled-ratio 1), its
  job e (--cache-max-gb 10 for both: the teacher's outputs on twice the texts);
- task-e-t2 (after task-e of the same --seed and --tag): task-e's prediction stage rerun from its intermediate stage
  (--intermediate-from) at lr 1e-4 with KD at temperature 2, the ablation's job e-t2;
- int8: the student (task's; another job's with --int8-from task-g|task-d|task-e, stored as int8@JOB) exported
  to ONNX and int8-quantized (ONNX Runtime dynamic), its test accuracy;
- bench: `distilkit bench` of the fp32 teacher (torch), the fp32 student (torch) and the int8 student (ONNX
  Runtime) interleaved, batch 1 on real test articles cut to 128 tokens (every article is longer: no padding),
  2 threads, medians over --rounds rounds (bench@JOB with --int8-from JOB).
--seed N (not 42, distill's default) runs the task-* jobs at that seed into their own folders (...-seedN) and
stores them, and int8/bench of them, as JOB@seedN. --tag T (a rerun on another machine) keeps every job apart:
folders NAME.T, rows JOB.T (task-e.T@seed1); the task jobs then use the teacher and general student of that tag.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import RUNS, metrics, run_distilkit, save, shown, summarise

# each job's run folder (benchmarks/runs/NAME); --tag T makes it NAME.T, --seed N (not 42) NAME[.T]-seedN
FOLDERS = {
    "teacher": "mpnet-bbc-news",
    "general": "mpnet-general-4L",
    "task": "mpnet-4L312-task",
    "task-g": "mpnet-4L312-general-task",  # the same task distillation of the general student
    "task-d": "mpnet-4L312-general-task-aug",  # task-g with augmentation (the ablation's d)
    "task-e": "mpnet-4L312-general-task-transfer",  # task-g with the transfer set (the ablation's e)
    "task-e-t2": "mpnet-4L312-general-task-transfer-t2",  # task-e's prediction stage at lr 1e-4, KD at T = 2
    "int8": "mpnet-4L312-int8",
}
TRANSFER = RUNS / "ablation-transfer.txt"  # written by benchmarks/tinybert_ablation.py
CORPUS = RUNS / "ablation-corpus"  # written by benchmarks/tinybert_ablation.py
DEFAULT_JOBS = ("teacher", "task", "int8", "bench")  # general and task-g only with --only (about an hour more)
COMMON = ["--threads", "2", "--batch-size", "32", "--max-length", "128", "--overwrite"]
LAYER_MAP = "0:0,1:3,2:6,3:9,4:12"  # TinyBERT's uniform map, 12 → 4 layers
TASK = ["--data", "bbc-news", "--method", "tinybert", "--layer-map", LAYER_MAP]
TASK += ["--intermediate-epochs", "6", "--epochs", "4", "--lr", "5e-4"]
# the teacher's 5 hidden states and 4 attention-score maps for 1,700 articles take 4.3 GB as float16: above the
# default --cache-max-gb 4, so raise it rather than run the 12-layer teacher live at every step
TASK += ["--cache-max-gb", "6"]
# one augmented copy or one unlabeled piece per article doubles the cached teacher outputs (8.6 GB)
TRANSFER_SET = ["--unlabeled", TRANSFER, "--unlabeled-ratio", "1", "--cache-max-gb", "10"]
# task distillation jobs: the student ("general": the general job's student of the same --tag) and what they add
TASK_JOBS = {
    "task": ("4L-312H-12A-1200F", []),
    "task-g": ("general", []),
    "task-d": ("general", ["--augment", "1", "--cache-max-gb", "10"]),
    "task-e": ("general", TRANSFER_SET),
    "task-e-t2": ("general", [*TRANSFER_SET, "--lr", "1e-4", "--intermediate-lr", "5e-4", "--temperature", "2"]),
}
REUSES = {"task-e-t2": "task-e"}  # jobs that start from another's intermediate stage (--intermediate-from)


def folder(job: str, tag: str = "", seed: int = 42) -> Path:
    """benchmarks/runs/NAME[.TAG][-seedN]: the teacher, general and int8 folders never take the seed."""
    name = FOLDERS[job] + (f".{tag}" if tag else "")
    return RUNS / (name if seed == 42 or job in ("teacher", "general", "int8") else f"{name}-seed{seed}")


def teacher(tag: str) -> dict:
    argv = ["finetune", "--model", "all-mpnet-base-v2", "--data", "bbc-news", "--epochs", "3", "--lr", "5e-5"]
    argv += ["--output", folder("teacher", tag), *COMMON]
    wall = run_distilkit(argv)
    m = metrics(folder("teacher", tag))
    return {"command": shown(argv), "wall_seconds": round(wall, 1), "train": m["train"], "test": m["test"]}


def general(tag: str) -> dict:
    argv = ["distill", "--general", "--method", "tinybert", "--teacher", "all-mpnet-base-v2", "--data", CORPUS]
    argv += ["--student", "4L-312H-12A-1200F", "--layer-map", LAYER_MAP, "--epochs", "0.5", "--lr", "5e-4"]
    argv += ["--save-steps", "200", "--cache", "false", "--output", folder("general", tag), *COMMON]
    wall = run_distilkit(argv)
    return summarise(metrics(folder("general", tag)), wall, argv)


def task(job: str, tag: str, seed: int) -> dict:
    """One task distillation job of TASK_JOBS, at --seed `seed`, from the teacher (and general student) of `tag`."""
    student, extra = TASK_JOBS[job]
    if student == "general":
        student = folder("general", tag) / "model"
    if job in REUSES:  # its intermediate stage is that of the run it reuses (same tag and seed)
        extra = [*extra, "--intermediate-from", folder(REUSES[job], tag, seed)]
    output = folder(job, tag, seed)
    argv = ["distill", "--teacher", folder("teacher", tag), "--student", student, *TASK, *extra]
    argv += [*(["--seed", str(seed)] if seed != 42 else []), "--output", output, *COMMON]
    wall = run_distilkit(argv)
    return summarise(metrics(output), wall, argv)


def int8(student: Path, tag: str) -> dict:
    out = folder("int8", tag)
    argv = ["quantize", "--model", student, "--method", "dynamic", "--output", out, "--overwrite"]
    run_distilkit(argv)
    from distilkit.evaluation.evaluate import evaluate
    from distilkit.evaluation.options import EvaluateConfig

    scores = evaluate(EvaluateConfig(model=str(out), data="bbc-news", max_length=128))
    teacher_test = metrics(folder("teacher", tag))["test"]["accuracy"]
    accuracy = scores["accuracy"]
    return {
        "command": shown(argv),
        "int8_test": round(accuracy, 4),
        "teacher_test": round(teacher_test, 4),
        "int8_retention": round(accuracy / teacher_test, 4),
    }


def bench(rounds: int, student: Path, tag: str) -> dict:
    out = RUNS / "mpnet-bench.json"
    argv = ["bench", folder("teacher", tag), student, folder("int8", tag), "--data", "bbc-news", "--max-length"]
    argv += ["128", "--threads", "2", "--rounds", str(rounds), "--output", out]
    run_distilkit(argv)
    result = json.loads(out.read_text())
    keep = ("model", "backend", "precision", "parameters", "size_mb", "latency_p50_ms", "latency_p95_ms")
    rows = [{k: r[k] for k in keep} | {"speedup": r["speedup"]} for r in result["models"]]
    return {"command": shown(argv), "seq_len": result["seq_len"], "rounds": rounds, "models": rows}


def result_key(name: str, args: argparse.Namespace) -> str:
    """teacher, task-e, int8@task-g (int8 and bench of another student than task's), task-e.xeon@seed1 ..."""
    key = f"{name}@{args.int8_from}" if name in ("int8", "bench") and args.int8_from != "task" else name
    key += f".{args.tag}" if args.tag else ""
    return key + ("" if args.seed == 42 or name in ("teacher", "general") else f"@seed{args.seed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = ["teacher", "general", *TASK_JOBS, "int8", "bench"]
    parser.add_argument("--only", nargs="*", choices=names, help="default: " + " ".join(DEFAULT_JOBS))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--int8-from", choices=list(TASK_JOBS), default="task", help="the student int8 and bench use")
    parser.add_argument("--seed", type=int, default=42, help="seed of the task-* jobs (42: distill's default)")
    parser.add_argument("--tag", default="", help="rows JOB.TAG, folders NAME.TAG: a rerun on another machine")
    args = parser.parse_args()
    student = folder(args.int8_from, args.tag, args.seed)
    for name in args.only or DEFAULT_JOBS:
        if name in TASK_JOBS:
            result = task(name, args.tag, args.seed)
        elif name in ("int8", "bench"):
            result = int8(student, args.tag) if name == "int8" else bench(args.rounds, student, args.tag)
        else:
            result = teacher(args.tag) if name == "teacher" else general(args.tag)
        save("tinybert_mpnet", result_key(name, args), result)
        print(f"\n{name}: {json.dumps({k: v for k, v in result.items() if k not in ('train', 'test')})}\n", flush=True)


if __name__ == "__main__":
    main()
