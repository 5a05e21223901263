"""Peer benchmark: distilkit vs TextBrewer 0.2.1 on the same distillation job, interleaved.

    .venv/bin/python benchmarks/peer_textbrewer.py [--train-seeds 42 1 2] [--settings long short] [--threads 2]
                                                   [--train-size 1000] [--quick] [--no-dev-file]

The job, identical for both tools: teacher benchmarks/runs/minilm-l6-bbc-news (from finetune_builtin.py);
student = 3 layers copied from teacher layers 0,2,4 (embeddings and head copied too); one stage of logit KD
(T = 1) + embedding MSE + hidden MSE + attention MSE, weight 1 each, each student layer matched to the teacher
layer it was copied from; 2 epochs, batch 32, AdamW at lr 1e-4, linear schedule; `--threads` torch threads.
Data: a seeded sample of --train-size texts of bbc-news's train split; the whole test split. Settings:
"long" = full articles at max length 128; "short" = each article's first sentence at max length 64: the text
up to its first ". " (or newline; the bbc-news loader has already collapsed whitespace, so the headline runs into
the first sentence, as in serve_load.py). The rows are written as JSONL that both tools read.

- distilkit: `distilkit distill ... --method kd --losses '{kd: 1, ...}' --temperature 1 --epochs 2 ...` and
  nothing else, so its defaults are what is measured (warm-up, weight decay, clipping, layer map, attention
  loss on pre-softmax scores, loss normalisation, precision...: whatever the CLI gives; config.yaml's values
  and the precision are recorded). --precision auto means bf16 autocast on a CPU with native bf16, as this
  machine's, so a third tool, "distilkit-fp32", runs the same command with --precision fp32 to show how much
  of the speed is precision (--no-fp32 skips it). A subprocess per run, with $DISTILKIT_CACHE set to a fresh
  folder, so that every run builds its teacher cache: TextBrewer runs its teacher live, so the cache build is
  part of distilkit's cost.
  Dev file: distilkit is given one (bbc-news's dev split, in the same setting). Without it, distilkit carves a
  dev split out of the training file (1/9 of it, by --split 0.8,0.1,0.1), so it would train on 889 of the
  1,000 texts and the two tools would not train on the same data. --no-dev-file measures that default instead.
- TextBrewer: benchmarks/peer_textbrewer_run.py in its own venv, benchmarks/.venv-textbrewer (made by
  benchmarks/peer_textbrewer_env.sh when missing; TextBrewer is not a dependency of distilkit). GeneralDistiller,
  teacher live, pre-padded TensorDataset; warm-up, weight decay and clipping set to distilkit's defaults.

Measured per run: training samples/s = train examples × epochs / training wall seconds (distilkit:
metrics.json train.wall_seconds, which includes the teacher-cache build, the per-epoch dev evaluation and
checkpoint saves; also given without the cache build and over the epochs alone; TextBrewer: its train() call,
which includes its per-epoch checkpoint save), and test accuracy (argmax of the student's logits on the test
split at the setting's max length). One round per training seed (--train-seeds, default 42 1 2; the data
sample stays that of --seed): both tools are deterministic, so rounds at one seed would repeat the same
accuracy and say nothing about seed noise. Each round starts with the next tool (round 1 TextBrewer). Writes
benchmarks/results/peer_textbrewer.json: per setting the runs, medians, the ratio distilkit / TextBrewer of
median samples/s, the accuracy difference (distilkit − TextBrewer, of the medians), commands and versions.
--quick (64 texts, 1 epoch, one round) is a smoke test; it writes benchmarks/results/peer_textbrewer_quick.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import HERE, ROOT, RUNS, metrics, save

TEACHER = RUNS / "minilm-l6-bbc-news"
VENV = HERE / ".venv-textbrewer"
ENV_SCRIPT = HERE / "peer_textbrewer_env.sh"
RUNNER = HERE / "peer_textbrewer_run.py"
MAX_LENGTH = {"long": 128, "short": 64}
LOSSES = "{kd: 1, embedding_mse: 1, hidden_mse: 1, attention_mse: 1}"
DISTILKIT_TOOLS = ("distilkit", "distilkit-fp32")  # its defaults, and the same with --precision fp32
RESOLVED = ("warmup", "weight_decay", "max_grad_norm", "layer_map", "attention_probabilities", "normalize_losses")


def first_sentence(text: str) -> str:
    """The text up to its first '. ' or newline, ending with one full stop."""
    return re.split(r"\. |\n", text, maxsplit=1)[0].strip().rstrip(".") + "."


def write_data(folder: Path, setting: str, train_size: int, seed: int) -> dict[str, Path]:
    """train/dev/test JSONL files (text, label) of bbc-news in the setting; train is a seeded sample."""
    from distilkit.data.builtin import load

    splits = load("bbc-news")
    rows = {"train": random.Random(seed).sample(splits["train"], train_size), "dev": splits["dev"]}
    rows["test"] = splits["test"]
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, items in rows.items():
        files[name] = folder / f"{name}.jsonl"
        with files[name].open("w", encoding="utf-8") as f:
            for row in items:
                text = row["text"] if setting == "long" else first_sentence(row["text"])
                f.write(json.dumps({"text": text, "label": row["label"]}) + "\n")
    return files


def ensure_env() -> Path:
    """TextBrewer's venv; built by peer_textbrewer_env.sh when it is missing or broken."""
    python = VENV / "bin" / "python"
    check = [str(python), "-W", "ignore", "-c", "import textbrewer"]
    if not python.exists() or subprocess.run(check, capture_output=True).returncode != 0:
        print(f"creating {VENV.relative_to(ROOT)} with {ENV_SCRIPT.relative_to(ROOT)} ...", flush=True)
        started = time.perf_counter()
        subprocess.run(["bash", str(ENV_SCRIPT)], check=True, cwd=ROOT)
        print(f"environment ready in {time.perf_counter() - started:.0f} s", flush=True)
    return python


def distilkit_defaults() -> dict:
    """distilkit's default warm-up, weight decay and clipping, given to TextBrewer too."""
    from distilkit.config import DistillConfig

    fields = {f.name: f.default for f in dataclasses.fields(DistillConfig)}
    return {k: fields[k] for k in ("warmup", "weight_decay", "max_grad_norm")}


def versions(python: Path) -> dict:
    """Versions of the packages that matter, as installed in the venv of `python`."""
    code = (
        "import json\nfrom importlib import metadata as m\nout = {}\n"
        "for n in ('textbrewer', 'distilkit', 'torch', 'transformers'):\n"
        "    try:\n        out[n] = m.version(n)\n    except m.PackageNotFoundError:\n        pass\n"
        "print(json.dumps(out))"
    )
    return json.loads(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout)


def source_commit() -> str:
    """The commit distilkit runs from (read-only git), '+modified' when src/ has uncommitted changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], capture_output=True, text=True, cwd=ROOT)
    return head.stdout.strip() + ("+modified" if dirty.stdout.strip() else "")


def run_logged(command: list[str], log: Path, env: dict | None = None) -> float:
    """Run a subprocess with its output in `log`; on failure show the log's tail and stop."""
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        sys.exit(f"{tail}\nerror: {shlex.join(command)} failed (exit {done.returncode}); full log: {log}")
    return time.perf_counter() - started


def distilkit_argv(files: dict, setting: str, args, output: Path, fp32: bool = False) -> list:
    """distilkit's command for the job; `fp32` adds --precision fp32 (the default is auto: bf16 where native)."""
    data = ["--train-file", files["train"]] + ([] if args.no_dev_file else ["--dev-file", files["dev"]])
    precision = ["--precision", "fp32"] if fp32 else []
    return [
        "distill", "--teacher", args.teacher, *data, "--test-file", files["test"],
        "--student", "3", "--method", "kd", "--losses", LOSSES, "--temperature", "1",
        "--epochs", args.epochs, "--batch-size", "32", "--max-length", MAX_LENGTH[setting], "--lr", "1e-4",
        "--threads", args.threads, "--output", output, "--overwrite", "--seed", args.train_seed, *precision,
    ]  # fmt: skip


def run_distilkit(argv: list, work: Path, label: str) -> dict:
    """One distilkit run in a subprocess with a fresh, empty teacher cache; the numbers from metrics.json."""
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    env = {**os.environ, "DISTILKIT_CACHE": str(cache)}
    process = run_logged([sys.executable, "-m", "distilkit", *map(str, argv)], work / f"{label}.log", env)
    log = (work / f"{label}.log").read_text(errors="replace")
    shutil.rmtree(cache, ignore_errors=True)
    output = Path(argv[argv.index("--output") + 1])
    m, config = metrics(output), (output / "config.yaml").read_text()
    train, test = m["train"], m["test"]
    epochs = [s for stage in train["stages"].values() for s in stage.get("epoch_seconds", [])]
    cache_s = sum(stage.get("cache_seconds", 0) for stage in train["stages"].values())
    samples = train["examples"] * len(epochs)
    shutil.rmtree(output, ignore_errors=True)
    return {
        "wall_seconds": train["wall_seconds"],
        "cache_seconds": round(cache_s, 2),
        "epoch_seconds": epochs,
        "other_seconds": round(train["wall_seconds"] - cache_s - sum(epochs), 2),
        "train_examples": train["examples"],
        "samples_per_second": round(samples / train["wall_seconds"], 2),
        "samples_per_second_without_cache": round(samples / (train["wall_seconds"] - cache_s), 2),
        "samples_per_second_epochs": round(samples / sum(epochs), 2),
        "test_accuracy": round(test["student"]["accuracy"], 4),
        "teacher_test_accuracy": round(test["teacher"]["accuracy"], 4),
        "dev_accuracy": round(m["dev"]["student"]["accuracy"], 4) if "dev" in m else None,
        "test_examples": test["student"]["examples"],
        "process_seconds": round(process, 1),
        "layer_map": m.get("layer_map"),
        "resolved": {k: m.get(k, v) for k, v in yaml.safe_load(config).items() if k in RESOLVED},
        "precision": "bf16" if "precision: bf16 autocast" in log else resolved_precision(config),
    }


def resolved_precision(config: str) -> str:
    """The precision a run trained in when it did not print the bf16 line: fp32 unless asked otherwise."""
    chosen = yaml.safe_load(config).get("precision", "auto")
    return "fp32" if chosen == "auto" else chosen


def check_optimizer(result: dict, defaults: dict) -> None:
    """Warn when distilkit's run resolved other optimizer settings than the ones TextBrewer was given."""
    resolved = result.get("resolved", {})
    differ = {k: (resolved[k], v) for k, v in defaults.items() if k in resolved and resolved[k] != v}
    if differ:
        print(f"  WARNING: distilkit ran with {differ} (run, given to TextBrewer): the jobs differ", flush=True)


def textbrewer_argv(python: Path, files: dict, setting: str, args, output: Path, defaults: dict) -> list:
    return [
        python, RUNNER, "--teacher", Path(args.teacher) / "model", "--train-file", files["train"],
        "--test-file", files["test"], "--max-length", MAX_LENGTH[setting], "--layers", "0,2,4",
        "--epochs", args.epochs, "--batch-size", "32", "--lr", "1e-4", "--temperature", "1",
        "--warmup", defaults["warmup"], "--weight-decay", defaults["weight_decay"],
        "--max-grad-norm", defaults["max_grad_norm"] or -1, "--threads", args.threads, "--seed", args.train_seed,
        "--output", output, "--result", output / "result.json",
    ]  # fmt: skip


def run_textbrewer(argv: list, work: Path, label: str) -> dict:
    process = run_logged([str(a) for a in argv], work / f"{label}.log")
    output = Path(argv[argv.index("--output") + 1])
    result = json.loads((output / "result.json").read_text())
    result["process_seconds"] = round(process, 1)
    result.pop("output", None)  # a temp folder, removed below
    result["samples_per_second_epochs"] = round(
        result["train_examples"] * result["epochs"] / sum(result["epoch_seconds"]), 2
    )
    shutil.rmtree(output, ignore_errors=True)
    return result


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Medians per tool, the samples/s ratio distilkit / TextBrewer and the accuracy difference."""
    med = {
        tool: {
            key: statistics.median(r[key] for r in rs)
            for key in ("samples_per_second", "samples_per_second_epochs", "test_accuracy", "wall_seconds")
        }
        for tool, rs in runs.items()
        if rs
    }
    for tool in DISTILKIT_TOOLS:
        if runs.get(tool):
            med[tool]["samples_per_second_without_cache"] = statistics.median(
                r["samples_per_second_without_cache"] for r in runs[tool]
            )
    for tool, rs in runs.items():
        if rs:
            med[tool]["test_accuracy_mean"] = round(statistics.mean(r["test_accuracy"] for r in rs), 4)
    out = {"median": med}
    tb = med.get("textbrewer")
    for tool in DISTILKIT_TOOLS:
        if tb and tool in med:
            dk, suffix = med[tool], "" if tool == "distilkit" else "_fp32"
            out["ratio_samples_per_second" + suffix] = round(dk["samples_per_second"] / tb["samples_per_second"], 3)
            out["ratio_without_cache" + suffix] = round(
                dk["samples_per_second_without_cache"] / tb["samples_per_second"], 3
            )
            out["ratio_epochs_only" + suffix] = round(
                dk["samples_per_second_epochs"] / tb["samples_per_second_epochs"], 3
            )
            out["accuracy_difference" + suffix] = round(dk["test_accuracy"] - tb["test_accuracy"], 4)
    return out


def exact(argv: list, work: Path) -> str:
    """The command as typed (shell-quoted), temp paths as <tmp> and paths relative to the repository."""
    return shlex.join(map(str, argv)).replace(str(work), "<tmp>").replace(str(ROOT) + "/", "")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--train-seeds", type=int, nargs="+", default=[42, 1, 2], help="one round per training seed (both tools)"
    )
    parser.add_argument("--settings", nargs="+", choices=list(MAX_LENGTH), default=list(MAX_LENGTH))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42, help="seed of the 1,000-text training sample")
    parser.add_argument("--teacher", type=Path, default=TEACHER, help="a distilkit run folder (model/ inside)")
    parser.add_argument("--no-dev-file", action="store_true", help="let distilkit carve its dev split from train")
    parser.add_argument("--quick", action="store_true", help="smoke test: 64 texts, 1 epoch, 1 round")
    parser.add_argument("--no-fp32", action="store_true", help="skip the distilkit --precision fp32 runs")
    args = parser.parse_args()
    if args.quick:
        args.train_size, args.epochs, args.train_seeds = 64, 1, args.train_seeds[:1]
    return args


def main() -> None:
    args = parse_args()
    if not (args.teacher / "model" / "config.json").exists():
        sys.exit(
            f"error: no teacher at {args.teacher}/model; create it with "
            "`.venv/bin/python benchmarks/finetune_builtin.py --only bbc-news` (about 6 minutes)"
        )
    python = ensure_env()
    env_versions = {"distilkit": versions(Path(sys.executable)), "textbrewer": versions(python)}
    defaults = distilkit_defaults()
    work = Path(tempfile.mkdtemp(prefix="peer-textbrewer-"))
    files = {s: write_data(work / s, s, args.train_size, args.seed) for s in args.settings}
    tools = ["textbrewer", "distilkit"] + ([] if args.no_fp32 else ["distilkit-fp32"])
    runs = {s: {tool: [] for tool in tools} for s in args.settings}
    commands = {}
    for r, args.train_seed in enumerate(args.train_seeds):
        for setting in args.settings:
            order = tools[r % len(tools) :] + tools[: r % len(tools)]  # each round starts with the next tool
            for tool in order:
                label, output = f"{setting}-{tool}-{r + 1}", work / f"{setting}-{tool}-{r + 1}"
                rounds = len(args.train_seeds)
                print(f"round {r + 1}/{rounds} (training seed {args.train_seed}), {setting}: {tool} ...", flush=True)
                if tool in DISTILKIT_TOOLS:
                    argv = distilkit_argv(files[setting], setting, args, output, fp32=tool == "distilkit-fp32")
                    result, command = run_distilkit(argv, work, label), exact(["distilkit", *argv], work)
                else:
                    argv = textbrewer_argv(python, files[setting], setting, args, output, defaults)
                    result, command = run_textbrewer(argv, work, label), exact(argv, work)
                result["train_seed"] = args.train_seed
                check_optimizer(result, defaults)
                commands.setdefault(setting, {})[tool] = command
                runs[setting][tool].append(result)
                print(
                    f"  {result['samples_per_second']:.2f} samples/s, test accuracy {result['test_accuracy']:.4f} "
                    f"({result['wall_seconds']:.1f} s training, {result.get('precision', 'fp32')})",
                    flush=True,
                )
            save_setting(setting, args, runs[setting], commands[setting], env_versions, defaults)
    shutil.rmtree(work, ignore_errors=True)


def save_setting(setting: str, args, runs: dict, commands: dict, env_versions: dict, defaults: dict) -> None:
    """Write (or rewrite, after each round) one setting's entry of the results file and print its summary."""
    summary = summarise(runs)
    result = {
        "job": {
            "data": "bbc-news",
            "setting": setting,
            "max_length": MAX_LENGTH[setting],
            "train_texts": args.train_size,
            "epochs": args.epochs,
            "rounds": len(runs["distilkit"]),
            "threads": args.threads,
            "data_seed": args.seed,
            "train_seeds": args.train_seeds[: len(runs["distilkit"])],
            "distilkit_dev_file": not args.no_dev_file,
            "distilkit_environment": "DISTILKIT_CACHE=<an empty folder per run>",
            "textbrewer_optimizer": defaults,
        },
        **summary,
        "runs": runs,
        "commands": commands,
        "versions": env_versions,
        "distilkit_source": source_commit(),
    }
    path = save("peer_textbrewer_quick" if args.quick else "peer_textbrewer", f"bbc-news-{setting}", result)
    if "ratio_samples_per_second" in summary:
        print(
            f"{setting}: distilkit / TextBrewer samples/s = {summary['ratio_samples_per_second']}x "
            f"(without the cache build {summary['ratio_without_cache']}x); accuracy difference "
            f"{summary['accuracy_difference']:+.4f} → {path.relative_to(ROOT)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
