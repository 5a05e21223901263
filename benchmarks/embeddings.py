"""Embedding models against the peers, same run, same data (issue 43).

    .venv/bin/python benchmarks/embeddings.py [--teacher all-mpnet-base-v2] [--texts 10000] [--epochs 1]
                                              [--students layers:1,4,7,10 minilm-l6] [--threads 2] [--reuse]
                                              [--quick] [--restate]

Training texts: sentences of bbc-news's training articles (their bodies, split at ". "), then Brown sentences, up to
--texts, and the next 500 as distilkit's --dev-file (so every tool trains on the same --texts); nothing of the dev
or test articles. Quality: the built-in retrieval task, bbc-news test titles → the bodies
of all 2,096 articles (evaluation/embedding.py), nDCG@10 with its 95% interval over queries, each model paired with
the teacher on the same queries (and distilkit's student with sentence-transformers' at the same shape).

Models, all from the same teacher, the same texts, epochs, batch size, learning rate and maximum length:
- the teacher, torch fp32;
- distilkit's students: `distilkit distill --task embedding` (its defaults: sentence_mse, the teacher cache, bf16
  autocast where the CPU has it), then `export` (ONNX fp32) and `quantize` (int8, dynamic). A student from teacher
  layers (`layers:...`) or a pretrained embedding model (`minilm-l6`: its own tokenizer, --separate-tokenization);
- sentence-transformers' distillation recipe at the same shape: for a student from teacher layers, the teacher
  with only those layers kept and `MSELoss` to the teacher's precomputed embeddings (its
  model_distillation_layer_reduction example); for a pretrained student, `EmbedDistillLoss` with a learned
  projection to the teacher's width (distance mse); `SentenceTransformerTrainer`, fp32 (its default);
- model2vec distilled from the teacher (256 PCA dimensions) in benchmarks/.venv-model2vec (made by
  peer_model2vec_env.sh: its distill extra declares an older transformers than distilkit's lock, so it gets a venv
  of its own with the lock's versions), and scored and timed through model2vec's `StaticModel` in this env.
sentence-transformers' ONNX / OpenVINO int8 exports need optimum, whose releases declare older transformers than the
lock's (NOT_RUN says which and what was tried), so they are recorded as not run, with that reason.

Every model reads each text up to the teacher's maximum length, in scoring and in timing. Speed, interleaved rounds
on the same threads: batch-1 latency (median over 100 test titles) and throughput (texts/s at
batch 32 over --speed-documents test articles), every model through the same `encode` (inference/embedding.py's
loaders); each model's ratios to the teacher in torch are stored beside its times. Training:
samples/s = texts × epochs / wall seconds (distilkit: metrics.json's wall_seconds, the teacher cache included;
sentence-transformers: the teacher's precompute plus `trainer.train()`). The trained models are listed in
benchmarks/runs/embeddings/models.json; `--reuse` takes them from there when the settings are the same (a rerun
of the scoring and timing alone). Writes benchmarks/results/embeddings.json (--quick: embeddings_quick.json, a
smoke run on the packaged MiniLM with 200 texts).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import torch
from common import RESULTS, RUNS, run_distilkit, save, shown

from distilkit.data import builtin
from distilkit.evaluation.embedding import retrieval_scores
from distilkit.evaluation.intervals import compare
from distilkit.inference.embedding import load_embedder

WORK = RUNS / "embeddings"
TEACHER = "teacher (torch)"  # the key every model is compared with, in quality and speed
DEV_TEXTS = 500  # texts after the training ones, for distill's dev measure (so it trains on all the others)
NOT_RUN = {
    "sentence-transformers ONNX int8 / OpenVINO int8 export of the teacher": (
        "sentence-transformers' backends need optimum: optimum-onnx 0.1.0 declares transformers < 4.58 and "
        "optimum-intel 2.2.0 < 5.6, below the lock's 5.24; installed without its dependencies on top of the lock, "
        "optimum-intel 2.2.0 fails on import (transformers 5.24 no longer has the qwen2_vl class it patches)"
    ),
}


def training_texts(limit: int) -> list[str]:
    """Sentences of the training articles' bodies, then Brown sentences: never a dev or test article."""
    texts = []
    for row in builtin.bbc_news_titled()["train"]:
        texts += [s.strip() + "." for s in re.split(r"(?<=[a-z])\. ", row["body"]) if len(s.split()) >= 4]
    if len(texts) < limit:
        texts += [" ".join(r["tokens"]) for split in builtin.load("brown-pos").values() for r in split]
    return texts[:limit]


def score(form: str, folder: str, task, length: int, batch: int = 32) -> tuple[dict, object]:
    """Retrieval scores of `folder` with every text read up to `length` tokens (the same for every model: a student
    saved with a shorter maximum would otherwise be scored on other text)."""
    model, tokenizer, _ = embedder(form, folder)
    metrics, units, _ = retrieval_scores(model, tokenizer, task, length, batch)
    return metrics, units


def distil_student(args, spec: str, corpus: Path) -> dict:
    """distilkit's student of `spec`, its ONNX export and its int8 form; their folders and the training speed."""
    name = spec.replace(":", "-").replace(",", "_")
    out = WORK / f"distilkit-{name}"
    argv = ["distill", "--task", "embedding", "--teacher", args.teacher, "--student", spec, "--data", corpus]
    argv += ["--epochs", args.epochs, "--batch-size", args.batch_size, "--lr", args.lr, "--max-length", args.max_length]
    argv += ["--threads", args.threads, "--output", out, "--overwrite", "--report-to", "none"]
    argv += ["--dev-file", corpus.with_name(f"dev-{corpus.name}")]  # trains on every text, as the peer's recipe
    if not spec.startswith(("layers:", "half")) and not spec[0].isdigit():
        argv.append("--separate-tokenization")
    run_distilkit(argv)
    metrics = json.loads((out / "metrics.json").read_text())
    run_distilkit(["export", "--model", out, "--output", f"{out}-onnx", "--overwrite"])
    run_distilkit(["quantize", "--model", f"{out}-onnx", "--output", f"{out}-int8", "--overwrite"])
    return {
        "folders": {"torch": str(out / "model"), "onnx": f"{out}-onnx", "int8": f"{out}-int8"},
        **training_speed(metrics, args.epochs),
        "parameters": metrics["parameters"],
        "dev": metrics.get("dev"),
        "command": shown(argv),
    }


def training_speed(metrics: dict, epochs: float) -> dict:
    """A distilkit run's training wall seconds and samples/s over the texts it trained on (metrics.json's count:
    without --dev-file, distill holds some of the corpus out for its dev measure)."""
    seconds, texts = metrics["train"]["wall_seconds"], metrics["train"]["examples"]
    return {"train_seconds": seconds, "train_texts": texts, "samples_per_second": round(texts * epochs / seconds, 2)}


def restate(path: Path) -> None:
    """Recompute the distilkit students' training speed in a results file from their run folders' metrics.json
    (for results written before training_speed counted the texts each run trained on)."""
    data = json.loads(path.read_text())
    for entry in data.values():
        for name, model in entry["models"].items():
            if name.startswith("distilkit "):
                metrics = json.loads((Path(model["folders"]["torch"]).parent / "metrics.json").read_text())
                model.update(training_speed(metrics, entry["settings"]["epochs"]))
                model["command"] = re.sub(r"\S*/benchmarks/runs/", "benchmarks/runs/", model["command"])  # as shown()
            elif name.startswith("sentence-transformers "):  # trained on every text of the run
                model.setdefault("train_texts", entry["settings"]["texts"])
    path.write_text(json.dumps(data, indent=2) + "\n")


def sentence_transformers_student(args, spec: str, texts: list[str]) -> dict:
    """sentence-transformers' recipe at the same shape and budget (module docstring)."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer import losses

    from distilkit.models import resolve_model

    teacher = SentenceTransformer(resolve_model(args.teacher), device="cpu")
    started = time.perf_counter()
    labels = teacher.encode(texts, batch_size=args.batch_size, convert_to_numpy=True)
    precompute = time.perf_counter() - started
    if spec.startswith("layers:"):
        keep = [int(i) for i in spec.split(":", 1)[1].split(",")]
        student = SentenceTransformer(resolve_model(args.teacher), device="cpu")
        encoder = student[0].auto_model
        encoder.encoder.layer = torch.nn.ModuleList([encoder.encoder.layer[i] for i in keep])
        encoder.config.num_hidden_layers = len(keep)
        loss = losses.MSELoss(student)
    else:
        student = SentenceTransformer(resolve_model(spec), device="cpu")
        width = teacher.get_sentence_embedding_dimension()
        loss = losses.EmbedDistillLoss(student, distance_metric="mse", projection_dim=width)
    student.max_seq_length = args.max_length
    data = Dataset.from_dict({"sentence": texts, "label": labels.tolist()})
    out = WORK / f"sentence-transformers-{spec.replace(':', '-').replace(',', '_')}"
    training = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
    )
    trainer = SentenceTransformerTrainer(model=student, args=training, train_dataset=data, loss=loss)
    started = time.perf_counter()
    trainer.train()
    seconds = precompute + time.perf_counter() - started
    student.max_seq_length = teacher.max_seq_length  # as the recipe's student, the teacher less layers, keeps it
    student.save(str(out / "model"))
    return {
        "folders": {"torch": str(out / "model")},
        "train_seconds": round(seconds, 1),
        "teacher_precompute_seconds": round(precompute, 1),
        "train_texts": len(texts),
        "samples_per_second": round(len(texts) * args.epochs / seconds, 2),
        "parameters": sum(p.numel() for p in student.parameters()),
        "loss": type(loss).__name__,
    }


M2V_PYTHON = Path(__file__).parent / ".venv-model2vec" / "bin" / "python"


def model2vec_student(args) -> dict:
    """model2vec distilled from the teacher, in its own venv (benchmarks/peer_model2vec_env.sh)."""
    import subprocess

    from distilkit.models import resolve_model

    if not M2V_PYTHON.exists():
        return {"not_run": f"no {M2V_PYTHON}: bash benchmarks/peer_model2vec_env.sh makes it"}
    out = WORK / "model2vec"
    code = "import sys; from model2vec.distill import distill; distill(model_name=sys.argv[1], pca_dims=256)"
    code += ".save_pretrained(sys.argv[2])"
    started = time.perf_counter()
    subprocess.run([str(M2V_PYTHON), "-c", code, resolve_model(args.teacher), str(out)], check=True)
    return {"folders": {"static": str(out)}, "train_seconds": round(time.perf_counter() - started, 1), "pca_dims": 256}


class Static:
    """A model2vec folder with the `encode(texts, tokenizer, length, batch)` of distilkit's embedders."""

    def __init__(self, folder: str):
        from model2vec import StaticModel

        self.model = StaticModel.from_pretrained(folder)

    def encode(self, texts: list[str], tokenizer, length: int, batch: int = 32) -> torch.Tensor:
        vectors = self.model.encode(texts, max_length=length, batch_size=batch, show_progress_bar=False)
        return torch.from_numpy(vectors).float()


def embedder(form: str, folder: str):
    """(model, tokenizer, maximum length) of a folder: distilkit's loaders, or model2vec's for a static model."""
    return (Static(folder), None, 512) if form == "static" else load_embedder(folder)


def timed(model, tokenizer, length: int, titles: list[str], articles: list[str]) -> tuple[float, float]:
    """(median batch-1 latency in ms over the titles, texts/s over the articles at batch 32)."""
    latencies = []
    for text in titles:
        started = time.perf_counter()
        model.encode([text], tokenizer, length, 1)
        latencies.append(1000 * (time.perf_counter() - started))
    started = time.perf_counter()
    model.encode(articles, tokenizer, length, 32)
    return statistics.median(latencies), len(articles) / (time.perf_counter() - started)


def speed(folders: dict[str, tuple[str, str]], task, rounds: int, length: int, documents: int) -> dict:
    """Every model timed once per round, the models in turn (interleaved); medians over the rounds, and each
    model's speed-up over the teacher in torch."""
    loaded = {name: (*embedder(form, folder)[:2], length) for name, (form, folder) in folders.items()}
    titles, articles = task.queries[:100], task.documents[:documents]
    for model, tokenizer, length in loaded.values():  # warm-up
        model.encode(titles[:4], tokenizer, length, 1)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in loaded}
    for _ in range(rounds):
        for name, (model, tokenizer, length) in loaded.items():
            samples[name].append(timed(model, tokenizer, length, titles, articles))
    medians = {
        name: (statistics.median(s[0] for s in runs), statistics.median(s[1] for s in runs))
        for name, runs in samples.items()
    }
    teacher_ms, teacher_rate = medians[TEACHER]
    return {
        name: {
            "batch1_ms": round(ms, 3),
            "texts_per_second_batch32": round(rate, 2),
            "batch1_speedup": round(teacher_ms / ms, 2),
            "throughput_speedup": round(rate / teacher_rate, 2),
        }
        for name, (ms, rate) in medians.items()
    }


def trained_models(args, texts: list[str], corpus: Path) -> dict[str, dict]:
    """Every model of the run with its folders and training record: trained now, or (--reuse) read from
    models.json when it was written with the same settings."""
    record = WORK / "models.json"
    settings = {k: v for k, v in vars(args).items() if k not in ("reuse", "rounds", "speed_documents")}
    if args.reuse and record.exists():
        saved = json.loads(record.read_text())
        if saved["settings"] == settings:
            return saved["models"]
        print(f"{record}: trained with other settings; training again")
    models: dict[str, dict] = {"teacher": {"folders": {"torch": args.teacher}}}
    for spec in args.students:
        models[f"distilkit {spec}"] = distil_student(args, spec, corpus)
        models[f"sentence-transformers {spec}"] = sentence_transformers_student(args, spec, texts)
    models["model2vec"] = model2vec_student(args)
    record.write_text(json.dumps({"settings": settings, "models": models}, indent=2) + "\n")
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", default="all-mpnet-base-v2")
    parser.add_argument("--students", nargs="+", default=["layers:1,4,7,10", "minilm-l6"])
    parser.add_argument("--texts", type=int, default=10000)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--speed-documents", type=int, default=64, help="articles timed at batch 32 per round")
    parser.add_argument("--reuse", action="store_true", help="the models models.json lists, if the settings match")
    parser.add_argument("--quick", action="store_true", help="a smoke run: minilm-l6 → 2 layers, 200 texts")
    parser.add_argument("--restate", action="store_true", help="only recompute training speeds (restate())")
    args = parser.parse_args()
    if args.restate:
        return restate(RESULTS / ("embeddings_quick.json" if args.quick else "embeddings.json"))
    if args.quick:
        args.teacher, args.students, args.texts, args.rounds = "minilm-l6", ["layers:0,5"], 200, 1
    torch.set_num_threads(args.threads)
    WORK.mkdir(parents=True, exist_ok=True)
    pool = training_texts(args.texts + DEV_TEXTS)
    texts, dev = pool[: len(pool) - DEV_TEXTS], pool[len(pool) - DEV_TEXTS :]  # dev: distilkit's own measure
    args.texts = len(texts)
    corpus = WORK / f"texts-{len(texts)}.txt"
    corpus.write_text("".join(t + "\n" for t in texts))
    corpus.with_name(f"dev-{corpus.name}").write_text("".join(t + "\n" for t in dev))
    from distilkit.embeddings.retrieval import bbc_news_titles

    task = bbc_news_titles("test")
    if args.quick:
        task = trimmed(task, 40, 300)
    result: dict = {"settings": dict(vars(args)), "task": task.name, "not_run": NOT_RUN}
    models = trained_models(args, texts, corpus)
    folders = {
        f"{name} ({form})": (form, folder)
        for name, entry in models.items()
        for form, folder in entry.get("folders", {}).items()
    }
    length = load_embedder(args.teacher)[2]  # every model reads as much of each text as the teacher does
    result["settings"]["eval_max_length"] = length
    scores = quality(folders, task, args.students, length)
    result.update(models=models, quality=scores)
    results_name = "embeddings_quick" if args.quick else "embeddings"
    save(results_name, args.teacher, result)  # the scores are kept if the timing fails
    result["speed"] = speed(folders, task, args.rounds, length, args.speed_documents)
    path = save(results_name, args.teacher, result)
    for name, entry in result["quality"].items():
        print(f"{name:45} nDCG@10 {entry['ndcg@10']:.4f}  retention {entry.get('retention', 1):.4f}")
    print(f"written: {path}")


def trimmed(task, queries: int, documents: int):
    """The first `queries` queries, their answers and other documents up to `documents` (the quick run)."""
    from distilkit.embeddings.retrieval import RetrievalTask

    answers = sorted({d for r in task.relevant[:queries] for d in r})
    keep = answers + [d for d in range(len(task.documents)) if d not in set(answers)][: documents - len(answers)]
    where = {d: i for i, d in enumerate(keep)}
    return RetrievalTask(
        f"{task.name}, first {queries} queries over {len(keep)} documents",
        task.queries[:queries],
        [task.documents[d] for d in keep],
        [[where[d] for d in r] for r in task.relevant[:queries]],
    )


def quality(folders: dict[str, tuple[str, str]], task, students: list[str], length: int) -> dict:
    """Each model's retrieval scores, paired with the teacher's (and distilkit's with sentence-transformers')."""
    scored, units = {}, {}
    for key, (form, folder) in folders.items():
        scored[key], units[key] = score(form, folder, task, length)
    for key in scored:
        if key != TEACHER:
            scored[key]["vs_teacher"] = compare(units[TEACHER], units[key], "ndcg@10")
            scored[key]["retention"] = round(scored[key]["ndcg@10"] / scored[TEACHER]["ndcg@10"], 4)
    for spec in students:
        ours, theirs = f"distilkit {spec} (torch)", f"sentence-transformers {spec} (torch)"
        scored[ours]["vs_sentence_transformers"] = compare(units[theirs], units[ours], "ndcg@10")
    return scored


if __name__ == "__main__":
    main()
