"""Benchmark: the TinyBERT paper's setting with real weights — a 12-layer, 768-wide teacher distilled into the
TinyBERT-4 shape, and the int8 student's speed-up over the fp32 teacher at batch 1.

    make mpnet                                   # once: assembles all-mpnet-base-v2 into the cache
    python benchmarks/tinybert_mpnet.py [--only JOB ...] [--rounds 30] [--int8-from task|task-g] [--seed 42]

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
- int8: the student (task's; another job's with --int8-from task-g|task-d|task-e, stored as int8@JOB) exported
  to ONNX and int8-quantized (ONNX Runtime dynamic), its test accuracy;
- bench: `distilkit bench` of the fp32 teacher (torch), the fp32 student (torch) and the int8 student (ONNX
  Runtime) interleaved, batch 1 on real test articles cut to 128 tokens (every article is longer: no padding),
  2 threads, medians over --rounds rounds (bench@JOB with --int8-from JOB).
--seed N (not 42, distill's default) runs the task-* jobs at that seed into their own folders (...-seedN) and
stores them, and int8/bench of them, as JOB@seedN.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import RUNS, metrics, run_distilkit, save, shown, summarise

TEACHER = RUNS / "mpnet-bbc-news"
STUDENT = RUNS / "mpnet-4L312-task"
STUDENT_G = RUNS / "mpnet-4L312-general-task"  # task-g: the same task distillation of the general student
STUDENT_D = RUNS / "mpnet-4L312-general-task-aug"  # task-d: task-g with augmentation (the ablation's d)
STUDENT_E = RUNS / "mpnet-4L312-general-task-transfer"  # task-e: task-g with the transfer set (the ablation's e)
TRANSFER = RUNS / "ablation-transfer.txt"  # written by benchmarks/tinybert_ablation.py
STUDENTS = {"task": STUDENT, "task-g": STUDENT_G, "task-d": STUDENT_D, "task-e": STUDENT_E}  # for --int8-from
INT8 = RUNS / "mpnet-4L312-int8"
GENERAL = RUNS / "mpnet-general-4L"
CORPUS = RUNS / "ablation-corpus"  # written by benchmarks/tinybert_ablation.py
DEFAULT_JOBS = ("teacher", "task", "int8", "bench")  # general and task-g only with --only (about an hour more)
COMMON = ["--threads", "2", "--batch-size", "32", "--max-length", "128", "--overwrite"]
LAYER_MAP = "0:0,1:3,2:6,3:9,4:12"  # TinyBERT's uniform map, 12 → 4 layers
TASK = ["--data", "bbc-news", "--method", "tinybert", "--layer-map", LAYER_MAP]
TASK += ["--intermediate-epochs", "6", "--epochs", "4", "--lr", "5e-4"]
# the teacher's 5 hidden states and 4 attention-score maps for 1,700 articles take 4.3 GB as float16: above the
# default --cache-max-gb 4, so raise it rather than run the 12-layer teacher live at every step
TASK += ["--cache-max-gb", "6"]


def teacher() -> dict:
    argv = ["finetune", "--model", "all-mpnet-base-v2", "--data", "bbc-news", "--epochs", "3", "--lr", "5e-5"]
    argv += ["--output", TEACHER, *COMMON]
    wall = run_distilkit(argv)
    m = metrics(TEACHER)
    return {"command": shown(argv), "wall_seconds": round(wall, 1), "train": m["train"], "test": m["test"]}


def general() -> dict:
    argv = ["distill", "--general", "--method", "tinybert", "--teacher", "all-mpnet-base-v2", "--data", CORPUS]
    argv += ["--student", "4L-312H-12A-1200F", "--layer-map", LAYER_MAP, "--epochs", "0.5", "--lr", "5e-4"]
    argv += ["--save-steps", "200", "--cache", "false", "--output", GENERAL, *COMMON]
    wall = run_distilkit(argv)
    return summarise(metrics(GENERAL), wall, argv)


def task(student: str = "4L-312H-12A-1200F", output: Path = STUDENT, extra: tuple = ()) -> dict:
    argv = ["distill", "--teacher", TEACHER, "--student", student, *TASK, *extra, "--output", output, *COMMON]
    wall = run_distilkit(argv)
    return summarise(metrics(output), wall, argv)


def int8(student: Path) -> dict:
    argv = ["quantize", "--model", student, "--method", "dynamic", "--output", INT8, "--overwrite"]
    run_distilkit(argv)
    from distilkit.evaluate.evaluator import evaluate
    from distilkit.evaluate.options import EvaluateConfig

    scores = evaluate(EvaluateConfig(model=str(INT8), data="bbc-news", max_length=128))
    teacher_test = metrics(TEACHER)["test"]["accuracy"]
    accuracy = scores["accuracy"]
    return {
        "command": shown(argv),
        "int8_test": round(accuracy, 4),
        "teacher_test": round(teacher_test, 4),
        "int8_retention": round(accuracy / teacher_test, 4),
    }


def bench(rounds: int, student: Path) -> dict:
    out = RUNS / "mpnet-bench.json"
    argv = ["bench", TEACHER, student, INT8, "--data", "bbc-news", "--max-length", "128", "--threads", "2"]
    argv += ["--rounds", str(rounds), "--output", out]
    run_distilkit(argv)
    result = json.loads(out.read_text())
    keep = ("model", "backend", "precision", "parameters", "size_mb", "latency_p50_ms", "latency_p95_ms")
    rows = [{k: r[k] for k in keep} | {"speedup": r["speedup"]} for r in result["models"]]
    return {"command": shown(argv), "seq_len": result["seq_len"], "rounds": rounds, "models": rows}


def _seeded(seed: int):
    """Students of another seed than distill's default 42 go to their own folders: mpnet-4L312-task-seed1 ..."""
    return lambda folder: folder if seed == 42 else folder.with_name(f"{folder.name}-seed{seed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = ["teacher", "task", "int8", "bench", "general", "task-g", "task-d", "task-e"]
    parser.add_argument("--only", nargs="*", choices=names, help="default: " + " ".join(DEFAULT_JOBS))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--int8-from", choices=list(STUDENTS), default="task", help="the student int8 and bench use")
    parser.add_argument("--seed", type=int, default=42, help="seed of the task-* jobs (42: distill's default)")
    args = parser.parse_args()
    seeded = _seeded(args.seed)
    student = seeded(STUDENTS[args.int8_from])
    seed_flag = () if args.seed == 42 else ("--seed", str(args.seed))
    jobs = {
        "teacher": teacher,
        "task": lambda: task(output=seeded(STUDENT), extra=seed_flag),
        "int8": lambda: int8(student),
        "bench": lambda: bench(args.rounds, student),
        "general": general,
        "task-g": lambda: task(GENERAL / "model", seeded(STUDENT_G), seed_flag),
        # one augmented copy or one unlabeled piece per article doubles the cached teacher outputs (8.6 GB)
        "task-d": lambda: task(
            GENERAL / "model", seeded(STUDENT_D), ("--augment", "1", "--cache-max-gb", "10", *seed_flag)
        ),
        "task-e": lambda: task(
            GENERAL / "model",
            seeded(STUDENT_E),
            ("--unlabeled", TRANSFER, "--unlabeled-ratio", "1", "--cache-max-gb", "10", *seed_flag),
        ),
    }
    for name in args.only or DEFAULT_JOBS:
        result = jobs[name]()
        # int8 and bench of another student than task's are stored beside them: int8@task-g, bench@task-d ...
        key = f"{name}@{args.int8_from}" if name in ("int8", "bench") and args.int8_from != "task" else name
        key += "" if args.seed == 42 or name in ("teacher", "general") else f"@seed{args.seed}"  # task-e@seed1 ...
        save("tinybert_mpnet", key, result)
        print(f"\n{name}: {json.dumps({k: v for k, v in result.items() if k not in ('train', 'test')})}\n", flush=True)


if __name__ == "__main__":
    main()
