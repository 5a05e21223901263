"""`export` and `quantize` of embedding models: the pooling and the normalisation inside the ONNX graph.

The graph takes the tokenizer's inputs and gives two outputs: `last_hidden_state` (the token states, what
sentence-transformers' ONNX backend reads and pools itself) and `sentence_embedding` (pooled and normalised in
the graph, what distilkit's inference reads). The folder is a sentence-transformers folder without torch weights:
model.onnx at the top (where sentence-transformers' `backend="onnx"` looks first), modules.json, the pooling and
normalisation configs, config.json, the tokenizer, and distilkit_onnx.json. Parity is checked on the embeddings:
after export and after ONNX Runtime's fusions, every text's cosine to the PyTorch embedding must be ≥
1 − --tolerance; int8 (dynamic, weights int8) reports the cosines it keeps. Nothing is written unless the checks
pass.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch

from distilkit.compress.common import default_output
from distilkit.console import show
from distilkit.embeddings.model import INPUTS, load_embedding_model, pool, save_sentence_transformer
from distilkit.errors import DistilkitError
from distilkit.files import folder_bytes, write_json
from distilkit.hub.card_exports import embedding_onnx_card
from distilkit.inference.embedding import OnnxEmbedder, embedding_folder, is_embedding_onnx_folder
from distilkit.inference.onnx_model import META_FILE, ONNX_FILE, read_meta
from distilkit.runs import RunFolder

OUTPUTS = ["last_hidden_state", "sentence_embedding"]


class SentenceGraph(torch.nn.Module):
    """The embedding model with positional inputs and both outputs, for the exporter."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = model.config  # the exporter's error names the model type

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.model.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        vectors = pool(hidden, attention_mask, self.model.pooling)
        if self.model.normalize:
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return hidden, vectors


def parity_texts() -> list[str]:
    from distilkit.compress.export import SAMPLE_TEXTS

    return SAMPLE_TEXTS


def min_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).min())


def sentence_transformers_files(model, tokenizer, work: Path) -> None:
    """modules.json, pooling and normalisation configs, config.json and the tokenizer, without the torch weights
    (written by sentence-transformers into a scratch folder, then copied)."""
    with tempfile.TemporaryDirectory(prefix="distilkit-st-") as tmp:
        save_sentence_transformer(model, tokenizer, Path(tmp))
        for item in Path(tmp).iterdir():
            if item.suffix in (".safetensors", ".bin"):
                continue
            if item.is_dir():
                shutil.copytree(item, work / item.name)
            else:
                shutil.copy2(item, work / item.name)


def export_embedding(cfg) -> Path:
    """`distilkit export` of a sentence-transformers folder (or a run holding one)."""
    from distilkit.compress.export import export_graph, optimize_graph

    source = embedding_folder(cfg.model)
    model, tokenizer, _ = load_embedding_model(source, None, "--model")
    model.eval()
    length = cfg.max_length or model.max_seq_length or 128
    output = cfg.output or default_output(cfg.model, "onnx")
    run = RunFolder(output, cfg.overwrite, resumable=False, what="export")
    run.check()
    texts = parity_texts()
    reference = model.encode(texts, tokenizer, length)
    sample = tokenizer(texts[:2], padding=True, return_tensors="pt")
    input_names = [n for n in INPUTS if n in sample and n in tokenizer.model_input_names]
    work = run.prepare()
    try:
        started = time.perf_counter()
        export_graph(SentenceGraph(model), dict(sample), input_names, work / ONNX_FILE, cfg.opset, OUTPUTS)
        seconds = time.perf_counter() - started
        meta = {
            "task": "embedding",
            "pooling": model.pooling,
            "normalize": model.normalize,
            "dimensions": model.width,
            "inputs": input_names,
            "outputs": OUTPUTS,
            "source": str(Path(source).resolve()),
            "opset": cfg.opset,
            "max_length": length,
            "export_seconds": round(seconds, 1),
        }
        write_json(work / META_FILE, meta)
        tokenizer.save_pretrained(str(work))
        cosine = min_cosine(OnnxEmbedder(work).encode(texts, tokenizer, length), reference)
        check_parity(cosine, cfg.tolerance, len(texts))
        parity = {"texts": len(texts), "min_cosine": cosine}
        fused = {}
        if cfg.optimize:
            fused = optimize_graph(work / ONNX_FILE, work / "optimized.onnx", model.config, first_token=False)
            shutil.move(work / ONNX_FILE, work / "plain.onnx")
            (work / "optimized.onnx").replace(work / ONNX_FILE)
            fused_cosine = min_cosine(OnnxEmbedder(work).encode(texts, tokenizer, length), reference)
            if fused_cosine >= 1 - cfg.tolerance:
                (work / "plain.onnx").unlink()
                parity["min_cosine_optimized"] = fused_cosine
            else:  # a fusion that changes the vectors is not worth its speed
                (work / "plain.onnx").replace(work / ONNX_FILE)
                fused = {"skipped": f"optimized graph's min cosine {fused_cosine:.6f}"}
        sentence_transformers_files(model, tokenizer, work)
        meta.update(fused_operators=fused, parity=parity, size_bytes=onnx_bytes(work))
        write_json(work / META_FILE, meta)
        embedding_onnx_card(work, cfg.model, meta)
        final = run.finish()
    except BaseException as err:
        run.fail(err)
    size = folder_bytes(final) / 1e6
    show(f"exported {source} → {final / ONNX_FILE} ({size:.1f} MB folder; outputs {', '.join(OUTPUTS)})")
    show(f"parity on {len(texts)} texts: min cosine to PyTorch {cosine:.6f} (at least 1 − {cfg.tolerance:g})")
    return final


def check_parity(cosine: float, tolerance: float, texts: int) -> None:
    if not cosine >= 1 - tolerance:  # NaN fails too
        raise DistilkitError(
            f"parity check failed: min cosine {cosine:.6f} to the PyTorch embeddings < 1 − --tolerance {tolerance:g} "
            f"on {texts} texts; nothing written"
        )


def onnx_bytes(folder: Path) -> int:
    return (folder / ONNX_FILE).stat().st_size


def quantize_embedding(cfg) -> Path:
    """`distilkit quantize` of an exported embedding folder: dynamic (int8 weights, activations quantized on the fly)
    or static (QDQ, activation ranges calibrated on --data's texts); the embeddings' cosines to the fp32 graph on
    the parity texts reported."""
    if cfg.method not in ("dynamic", "static"):
        raise DistilkitError(f"--method {cfg.method}: embedding models are quantized with --method dynamic or static")
    source = Path(embedding_folder(cfg.model))
    if not is_embedding_onnx_folder(source):
        raise DistilkitError(
            f"{cfg.model}: quantize an embedding model's ONNX export: distilkit export --model {cfg.model} first"
        )
    meta = read_meta(source)
    length = int(meta.get("max_length") or 128)
    calibration = calibration_batches(cfg, source, meta, length) if cfg.method == "static" else None
    output = cfg.output or default_output(cfg.model, f"int8-{cfg.method}")
    run = RunFolder(output, cfg.overwrite, resumable=False, what="quantization")
    run.check()
    work = run.prepare()
    try:
        settings = quantize_graph(source / ONNX_FILE, work / ONNX_FILE, cfg, calibration)
        for item in source.iterdir():  # tokenizer, config, sentence-transformers modules travel with the graph
            if item.name in (ONNX_FILE, META_FILE, "README.md"):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, work / item.name)
        write_json(work / META_FILE, {**meta, "quantization": settings, "quantized_from": str(source.resolve())})
        report = int8_report(source, work, settings, length)
        embedding_onnx_card(work, cfg.model, read_meta(work))
        final = run.finish()
    except BaseException as err:
        run.fail(err)
    sizes = report["size_bytes"]
    show(f"quantized ({cfg.method}) → {final}: model.onnx {sizes['fp32'] / 1e6:.1f} MB → {sizes['int8'] / 1e6:.1f} MB")
    c = report["cosine_to_fp32"]
    show(f"embeddings of {c['texts']} texts vs the fp32 graph: mean cosine {c['mean']:.4f}, min {c['min']:.4f}")
    return final


def calibration_batches(cfg, source: Path, meta: dict, length: int) -> list[dict]:
    """Static calibration's inputs: --calibration-samples texts of --data (bbc-news: its training articles), one
    tokenized text each; refused before anything is written when --data is missing."""
    import random

    from distilkit.models import load_tokenizer

    if not cfg.data:
        raise DistilkitError(
            "--method static calibrates activation ranges on texts like yours: give --data (a text file, one text "
            "per line, or bbc-news), or use --method dynamic"
        )
    if cfg.data == "bbc-news":
        from distilkit.data import builtin

        texts = [r["body"] for r in builtin.bbc_news_titled()["train"]]
    else:
        from distilkit.distillation.general import load_corpus

        with tempfile.TemporaryDirectory(prefix="distilkit-calibration-") as tmp:
            texts = [t for t in load_corpus(str(cfg.data), cfg.text_column, Path(tmp))["text"] if t and t.strip()]
    texts = random.Random(0).sample(texts, min(cfg.calibration_samples, len(texts)))
    tokenizer = load_tokenizer(str(source))
    names = meta.get("inputs") or ["input_ids", "attention_mask"]
    encoded = tokenizer(texts, truncation=True, max_length=length)
    return [{k: encoded[k][i] for k in names if k in encoded} for i in range(len(texts))]


def quantize_graph(src: Path, dst: Path, cfg, calibration: list[dict] | None) -> dict:
    """ONNX Runtime's int8 (compress/quantize.py): dynamic, or static QDQ calibrated on `calibration`."""
    from distilkit.compress.quantize import CalibrationReader, quantize_dynamic_int8, quantize_static_qdq

    if calibration is None:
        return quantize_dynamic_int8(src, dst, cfg)
    reader = CalibrationReader(calibration, list(calibration[0]))
    return quantize_static_qdq(src, dst, reader, cfg, len(calibration))


def int8_report(source: Path, work: Path, settings: dict, length: int) -> dict:
    """The int8 graph's embeddings against the fp32 graph's on the parity texts, and the sizes; written into
    quantize_report.json and the folder's metadata."""
    from distilkit.models import load_tokenizer

    texts, tokenizer = parity_texts(), load_tokenizer(str(source))
    int8, fp32 = (OnnxEmbedder(f).encode(texts, tokenizer, length) for f in (work, source))
    cosines = torch.nn.functional.cosine_similarity(int8, fp32)
    report = {
        "quantization": settings,
        "cosine_to_fp32": {"texts": len(texts), "mean": float(cosines.mean()), "min": float(cosines.min())},
        "size_bytes": {"fp32": onnx_bytes(source), "int8": onnx_bytes(work)},
    }
    write_json(work / "quantize_report.json", report)
    meta = {**read_meta(work), "size_bytes": onnx_bytes(work), "parity": report["cosine_to_fp32"]}
    write_json(work / META_FILE, meta)
    return report
