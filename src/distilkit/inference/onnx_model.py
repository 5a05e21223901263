"""ONNX model folders: what `distilkit export` and `distilkit quantize` write, and how they are run.

An ONNX folder is self-contained, so ONNX Runtime inference needs no torch:

    model.onnx            the graph (dynamic batch and sequence axes), input ids/mask(/type ids) → logits
    config.json           the Hugging Face config (label map, problem type)
    tokenizer files       as saved by `tokenizer.save_pretrained`
    distilkit_onnx.json   task, labels, inputs, source model, opset, optimizations, parity, quantization

`predict`, `evaluate` (and the server) load such a folder with `load_trained` like any model folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from distilkit.errors import DistilkitError

ONNX_FILE = "model.onnx"
META_FILE = "distilkit_onnx.json"
# ONNX Runtime fusions that make our graphs slower on CPU, so neither export nor our CPU sessions apply them.
# SkipLayerNormalization (residual Add + LayerNorm in one kernel): ONNX Runtime 1.32's CPU kernel took 291 us on
# a [1, 128, 312] input where Add then LayerNormalization took 54 us (one thread, an AVX-512 Xeon); unfused, the
# int8 4L-312 student ran ~21% faster at batch 1, MiniLM-L6 ~12% (benchmarks/results/onnx_fusions.json, skip-ln).
SLOW_FUSIONS = ["SkipLayerNormFusion"]


def is_onnx_folder(path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / META_FILE).exists() or (path / ONNX_FILE).exists())


def read_meta(folder: Path) -> dict:
    meta_file = Path(folder) / META_FILE
    if not meta_file.exists():
        raise DistilkitError(
            f"{folder}: has {ONNX_FILE} but no {META_FILE}; export the model with distilkit export so the task "
            "and label map are saved beside it"
        )
    try:
        return json.loads(meta_file.read_text())
    except json.JSONDecodeError as err:
        raise DistilkitError(f"{meta_file}: invalid JSON ({err.msg})") from None


def session_options(threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # ORT's worker threads spin after each run by default; next to torch (or a second session) that steals the
    # cores from the other and made interleaved timings 4x wrong here. Sleeping costs nothing measurable.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = threads or int(os.environ.get("DISTILKIT_ORT_THREADS", 0)) or 0
    return options


def open_session(path: Path, threads: int | None = None, options=None):
    """An ONNX Runtime session on CUDA when onnxruntime-gpu has it, else on the CPU without SLOW_FUSIONS."""
    import onnxruntime as ort

    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    disabled = SLOW_FUSIONS if providers == ["CPUExecutionProvider"] else []
    options = options or session_options(threads)
    return ort.InferenceSession(str(path), options, providers=providers, disabled_optimizers=disabled)


class OnnxClassifier:
    """An ONNX Runtime session with the call shape `run_batches` needs: a dict of int64 arrays → logits."""

    def __init__(self, folder: Path, threads: int | None = None):
        """`folder` is an ONNX folder, or an .onnx file itself."""
        self.path = Path(folder) if str(folder).endswith(".onnx") else Path(folder) / ONNX_FILE
        if not self.path.exists():
            raise DistilkitError(
                f"{folder}: no {ONNX_FILE}; export one with distilkit export --model ... --output {folder}"
            )
        try:
            self.session = open_session(self.path, threads)
        except Exception as err:  # onnxruntime raises its own exception types for unreadable graphs
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DistilkitError(
                f"{self.path}: ONNX Runtime cannot load this file ({first[:200]}); it is corrupt or not an ONNX "
                "model: export it again with distilkit export"
            ) from None
        self.input_names = [i.name for i in self.session.get_inputs()]

    def check_matches(self, meta: dict, labels: int) -> None:
        """Refuse a graph that does not match its folder (a model.onnx copied from another model): distilkit's
        inputs only, input_ids among them, the inputs the metadata lists, and one output of `labels` logits, of
        rank 2 (sequence classification) or 3 (one row per token)."""
        problems = []
        inputs, known = set(self.input_names), {"input_ids", "attention_mask", "token_type_ids"}
        if not inputs <= known or "input_ids" not in inputs:
            problems.append(f"inputs {sorted(inputs)}, where distilkit feeds {sorted(known)} (input_ids always)")
        elif meta.get("inputs") and inputs != set(meta["inputs"]):
            problems.append(f"inputs {sorted(inputs)}, where {META_FILE} lists {sorted(meta['inputs'])}")
        outputs = self.session.get_outputs()
        rank = 3 if meta.get("task") == "token-classification" else 2
        if len(outputs) != 1:
            problems.append(f"{len(outputs)} outputs, where an exported classifier has one (its logits)")
        elif outputs[0].shape and len(outputs[0].shape) != rank:
            problems.append(f"logits of rank {len(outputs[0].shape)}, where a {meta.get('task')} model gives {rank}")
        elif outputs[0].shape and isinstance(outputs[0].shape[-1], int) and outputs[0].shape[-1] != labels:
            problems.append(f"{outputs[0].shape[-1]} logits per row, where {META_FILE} has {labels} labels")
        if problems:
            raise DistilkitError(
                f"{self.path}: the graph does not match its folder ({'; '.join(problems)}); it comes from another "
                "model: export this folder again with distilkit export"
            )

    def logits(self, batch: dict) -> np.ndarray:
        return self.session.run(None, onnx_feed(self.input_names, batch))[0]


def onnx_feed(input_names: list[str], batch: dict) -> dict[str, np.ndarray]:
    """The graph's inputs from a tokenizer's batch, as int64; token type ids are zeros when the batch has none."""
    feed = {}
    for name in input_names:
        value = batch.get(name)
        if value is None and name == "token_type_ids":
            value = np.zeros_like(np.asarray(batch["input_ids"]))
        feed[name] = np.asarray(value, dtype=np.int64)
    return feed


def graph_is_quantized(onnx_file: Path) -> bool:
    """True when the graph already holds int8 operators (dynamic or QDQ quantization)."""
    import onnx

    try:
        model = onnx.load(str(onnx_file), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends
        raise DistilkitError(
            f"{onnx_file}: cannot read this file ({type(err).__name__}); it is corrupt or not an "
            "ONNX model: export it again with distilkit export"
        ) from None
    quant_ops = {
        "DynamicQuantizeLinear",
        "QuantizeLinear",
        "MatMulInteger",
        "QLinearMatMul",
        "DynamicQuantizeMatMul",
        "QAttention",
        "QGemm",
    }
    return any(node.op_type in quant_ops for node in model.graph.node)
