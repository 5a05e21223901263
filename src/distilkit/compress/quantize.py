"""`distilkit quantize`: int8 models, with the accuracy change and logit difference written beside them.

Three methods:
- dynamic (ONNX Runtime `quantize_dynamic`): weights int8 per channel, activations quantized on the fly per
  batch. No data needed; the usual choice for transformers on CPU.
- static (ONNX Runtime `quantize_static`, QDQ format): activation ranges calibrated once on training examples,
  so no range computation at run time; more sensitive to calibration data.
- torchao (transformers' `TorchAoConfig`, int8 dynamic activations + int8 weights): stays a PyTorch model, saved
  as a plain HF folder that `from_pretrained` loads (torchao installed). `torch.ao.quantization` is deprecated.

Every output holds `quantize_report.json`: dev-set metric before/after, max and mean |logit difference| to the
fp32 model, sizes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from distilkit.compress.common import default_output, with_run_data
from distilkit.compress.onnx_graph import GraphIndex, int_attribute
from distilkit.compress.options import ExportConfig, QuantizeConfig
from distilkit.console import show
from distilkit.data.encode import encode_rows
from distilkit.errors import DistilkitError
from distilkit.evaluation.evaluate import score_rows, split_rows_for
from distilkit.evaluation.metrics import default_metric, headline
from distilkit.files import folder_bytes, write_json
from distilkit.hub.card_exports import quantize_card
from distilkit.inference.embedding import is_embedding_model
from distilkit.inference.loading import MODEL_INPUTS, load_trained
from distilkit.inference.onnx_model import META_FILE, ONNX_FILE, graph_is_quantized, is_onnx_folder, read_meta
from distilkit.models import read_config_dict, resolve_model
from distilkit.runs import RunFolder


def refuse_quantized(model: str) -> None:
    """Quantizing twice compounds the error and ONNX Runtime cannot re-quantize int8 operators: refuse."""
    if is_onnx_folder(model):
        meta = read_meta(Path(model))
        onnx_file = Path(model) / ONNX_FILE
        if meta.get("quantization") or (onnx_file.exists() and graph_is_quantized(onnx_file)):
            how = (meta.get("quantization") or {}).get("method", "int8")
            raise DistilkitError(
                f"{model}: this model is already quantized ({how}); quantize the fp32 export instead"
                + (f" ({meta['quantized_from']})" if meta.get("quantized_from") else "")
            )
        return
    config = read_config_dict(resolve_model(model))
    if config.get("quantization_config"):
        method = config["quantization_config"].get("quant_method", "?")
        raise DistilkitError(f"{model}: this model is already quantized ({method}); quantize the fp32 model instead")


class CalibrationReader:
    """Feeds ONNX Runtime's static calibration one tokenized training example at a time."""

    def __init__(self, dataset, input_names: list[str]):
        self.items = iter([{k: np.asarray([row[k]], dtype=np.int64) for k in input_names} for row in dataset])

    def get_next(self):
        return next(self.items, None)

    def rewind(self):  # part of ORT's CalibrationDataReader protocol; one pass is all MinMax needs
        pass


def calibration_rows(trained, opts, samples: int) -> list[dict]:
    """Training examples for static calibration; data of another task than the model's is refused."""
    data, split, rows = split_rows_for(trained, opts, "train", as_in_training=True)
    if split != "train":
        raise DistilkitError(f"{data.name}: no training split to calibrate on; pass --data with training rows")
    import random

    return random.Random(0).sample(rows, min(samples, len(rows)))


def check_held_out(calibration: list[dict], checked: list[dict], name: str, split: str) -> None:
    """The accuracy check of a static int8 model must not run on the rows that calibrated it: ranges fitted to
    those rows would look fine there whatever they do elsewhere."""
    used = {r.get("_where") for r in calibration}
    shared = [r for r in checked if r.get("_where") in used]
    if shared:
        raise DistilkitError(
            f"{name}: the accuracy check ({split} split, {len(checked)} rows) would run on {len(shared)} of the "
            f"{len(calibration)} rows static calibration uses, so it would check nothing; give data with a train "
            "split and a separate dev or test split (or --split), or use --method dynamic"
        )


@contextlib.contextmanager
def quiet_root_logger():
    """ORT's quantizer logs a "consider pre-processing" warning through the root logger on every call."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


WALK_STOPS = {"Cast", "Shape", "MatMul", "Gemm", "Softmax", "LayerNormalization"}


def _walk_back(graph, tensors: list[str]) -> list[str]:
    """Names of the nodes that compute `tensors`, walking producers back until WALK_STOPS or a fused op."""
    producer = GraphIndex(graph).producer
    found, todo = {}, list(tensors)
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.name in found or node.op_type in WALK_STOPS or node.domain == "com.microsoft":
            continue
        found[node.name] = node
        todo += list(node.input)
    return list(found)


def index_arithmetic_nodes(graph) -> list[str]:
    """Nodes of float arithmetic whose result is cast to an integer: they compute indices, not activations.

    Relative-position buckets are log(distance) scaled and cast to an index (MPNet's, in graphs exported without
    export_patches' bias table: older exports, or a transformers layout the patch does not know). Static QDQ
    rounds such a Mul like any activation, the -inf of log(0) calibrates an infinite scale, and the index leaves
    the bias table (ONNX Runtime: Gather index out of bounds). Walks back from each Cast to an integer or bool
    type through its producers, stopping at the next Cast or Shape (beyond them nothing is float) and at the
    network's own layers (a product, a norm, a fused op): those are activations and stay quantized."""
    import onnx

    integer = {onnx.TensorProto.BOOL, *range(onnx.TensorProto.INT8, onnx.TensorProto.INT64 + 1)}
    integer |= {onnx.TensorProto.UINT8, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64}
    casts = [n for n in graph.node if n.op_type == "Cast" and int_attribute(n, "to", None) in integer]
    return _walk_back(graph, [name for node in casts for name in node.input])


def attention_bias_nodes(graph) -> list[str]:
    """The nodes computing each fused MultiHeadAttention's attention bias (MPNet's position bias plus the padding
    mask). MultiHeadAttention has no int8 kernel, so int8 there only adds work and error. Static QDQ: 8 bits
    calibrated on unpadded text clamp the mask's −3.4e38 to about −0.07, so padding was attended to. Dynamic:
    the position-bias table was gathered as int8, transposed and dequantized to (batch, heads, n, n) on every
    run: 0.10 ms of the 4L-312 student's 5.85 in one interleaved A/B."""
    bias = [n.input[5] for n in graph.node if n.op_type == "MultiHeadAttention" and len(n.input) > 5 and n.input[5]]
    return _walk_back(graph, bias)


def qkv_split_nodes(graph) -> list[str]:
    """The Splits of q, k and v computed in one product (attention_fusion's merge), and the Slice that cuts a
    query to its first token (first_token's pass): they feed only MultiHeadAttention, which has no int8 kernel.
    Left in, ONNX Runtime 1.32's QDQ quantizer never finished such a graph (a stack dump showed it looping in
    `_quantize_sharing_param_tensors`, where a Split's outputs wait for the quantization of its input)."""
    inputs = {name for n in graph.node if n.op_type == "MultiHeadAttention" for name in n.input[:3]}
    cuts = [n for n in graph.node if n.op_type == "Slice" and n.output[0] in inputs]
    inputs |= {n.input[0] for n in cuts}
    splits = [n.name for n in graph.node if n.op_type == "Split" and set(n.output) <= inputs]
    return splits + [n.name for n in cuts]


def static_fp32_nodes(graph) -> list[str]:
    """What static QDQ must leave fp32: index arithmetic, the attention bias and the q/k/v Splits (above), and the
    tables of a fused EmbedLayerNormalization, which has no int8 kernel to absorb a DequantizeLinear: dequantized
    on every run (6.6 ms for MPNet's word table on the 4L-312 student, whose int8 graph then ran slower than its
    fp32 one: 13.9 vs 9.8 ms)."""
    embeddings = [n.name for n in graph.node if n.op_type == "EmbedLayerNormalization"]
    nodes = [*index_arithmetic_nodes(graph), *attention_bias_nodes(graph), *qkv_split_nodes(graph), *embeddings]
    return list(dict.fromkeys(nodes))


def offset_position_embeddings(graph) -> list[str]:
    """Fused EmbedLayerNormalization nodes whose position ids are not simply 0..n-1 (MPNet, RoBERTa-style: they
    start after the padding index). Dynamic int8 turns the node into QEmbedLayerNormalization, which has no
    position-ids input and so silently looks up positions 0..n-1: on the 12-layer teacher's MPNet student that
    cost 2 of 212 dev articles (max |logit difference| 2.6, vs 0.03 with the node left fp32). Such nodes stay
    fp32; DistilBERT's plain range (a slice of arange from 0) is safe to quantize."""
    g = GraphIndex(graph)

    def plain_range(name: str) -> bool:
        node = g.producer.get(name)
        while node is not None and node.op_type == "Cast":
            node = g.producer.get(node.input[0])
        if node is None or node.op_type != "Slice" or len(node.input) < 3:
            return False
        data, start = g.array(node.input[0]), g.array(node.input[1])
        steps = g.array(node.input[4]) if len(node.input) > 4 and node.input[4] else np.array([1])
        if data is None or start is None or steps is None:  # not constant, or not readable: unknown, stay fp32
            return False
        plain = data.ravel().tolist() == list(range(data.size))
        return plain and start.ravel().tolist() == [0] and steps.ravel().tolist() == [1]

    embeds = [n for n in graph.node if n.op_type == "EmbedLayerNormalization" and len(n.input) > 8 and n.input[8]]
    return [n.name for n in embeds if not plain_range(n.input[8])]


def quantize_onnx(src_folder: Path, work: Path, cfg: QuantizeConfig, trained, rows: list[dict] | None) -> dict:
    """ONNX Runtime dynamic or static (QDQ, calibrated on `rows`) int8 into `work/model.onnx`; returns the settings."""
    src = src_folder / ONNX_FILE
    if cfg.method == "dynamic":
        return quantize_dynamic_int8(src, work / ONNX_FILE, cfg)
    dataset, _ = encode_rows(
        rows, trained.task, trained.tokenizer, cfg.max_length, trained.label2id, trained.regression
    )
    input_names = [i for i in read_meta(src_folder)["inputs"] if i in MODEL_INPUTS]
    return quantize_static_qdq(src, work / ONNX_FILE, CalibrationReader(dataset, input_names), cfg, len(rows))


# fused graphs carry com.microsoft ops whose output types shape inference cannot give; say they are float
def _float_default() -> dict:
    import onnx

    return {"DefaultTensorType": onnx.TensorProto.FLOAT}


def quantize_dynamic_int8(src: Path, dst: Path, cfg: QuantizeConfig) -> dict:
    """ONNX Runtime's dynamic int8 (weights int8, activations quantized on the fly) of `src` into `dst`."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src), load_external_data=False).graph
    kept = offset_position_embeddings(graph) + attention_bias_nodes(graph)
    with quiet_root_logger():
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=cfg.per_channel,
            nodes_to_exclude=kept,
            extra_options=_float_default(),
        )
    return {"method": "dynamic", "weights": "int8", "per_channel": cfg.per_channel, "kept_fp32": kept}


def quantize_static_qdq(src: Path, dst: Path, reader, cfg: QuantizeConfig, examples: int) -> dict:
    """ONNX Runtime's static QDQ int8 of `src` into `dst`, activation ranges calibrated on `reader`'s inputs."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    kept = static_fp32_nodes(onnx.load(str(src), load_external_data=False).graph)
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    with contextlib.redirect_stdout(io.StringIO()), quiet_root_logger():
        quantize_static(
            str(src),
            str(dst),
            reader,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=cfg.per_channel,
            calibrate_method=methods[cfg.calibration_method],
            nodes_to_exclude=kept,
            extra_options=_float_default(),
        )
    return {
        "method": "static",
        "format": "QDQ",
        "activations": "uint8",
        "weights": "int8",
        "per_channel": cfg.per_channel,
        "calibration": cfg.calibration_method,
        "calibration_examples": examples,
        "kept_fp32": kept,
    }


def quantize_torchao(model_path: str, work: Path, trained) -> dict:
    """int8 dynamic activations + int8 weights through transformers' torchao integration; a plain HF folder."""
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig
        from transformers import TorchAoConfig
    except ImportError:
        raise DistilkitError("--method torchao needs torchao: pip install torchao") from None
    from distilkit.models import load_model

    quant = TorchAoConfig(Int8DynamicActivationInt8WeightConfig())
    model = load_model(model_path, trained.task, quantization_config=quant)
    model.save_pretrained(work)
    trained.tokenizer.save_pretrained(work)
    return {"method": "torchao", "scheme": "int8 dynamic activations, int8 weights"}


def fp32_onnx_folder(cfg: QuantizeConfig, tmp: Path) -> Path:
    """The fp32 ONNX folder to quantize: the one given, or a fresh (parity-checked) export of a torch model."""
    if is_onnx_folder(cfg.model):
        return Path(cfg.model)
    from distilkit.compress.export import export

    print(f"{cfg.model} is a PyTorch model: exporting it to ONNX first")
    opts = {k: getattr(cfg, k) for k in ExportConfig.__dataclass_fields__ if hasattr(cfg, k) and k != "output"}
    return export(ExportConfig(**{**opts, "output": str(tmp / "fp32"), "overwrite": True}))


def compare(reference: dict, candidate: dict, ref_logits: list, cand_logits: list, metric: str) -> dict:
    """The fp32 → int8 change of the main metric, logit differences and how often the prediction stays."""
    diffs = [np.abs(a - b) for a, b in zip(ref_logits, cand_logits)]
    before, after = headline(reference, metric), headline(candidate, metric)
    return {
        "metric": metric,
        "fp32": before,
        "int8": after,
        "change": after - before,
        "max_abs_logit_diff": float(max(d.max() for d in diffs)),
        "mean_abs_logit_diff": float(np.mean([d.mean() for d in diffs])),
        "agreement": float(
            np.mean([np.array_equal(a.argmax(-1), b.argmax(-1)) for a, b in zip(ref_logits, cand_logits)])
        ),
    }


def quantize(cfg: QuantizeConfig, resolved: dict | None = None) -> Path:
    refuse_quantized(cfg.model)
    if is_embedding_model(cfg.model):
        from distilkit.compress.embedding_export import quantize_embedding

        return quantize_embedding(cfg)
    if cfg.method == "torchao" and is_onnx_folder(cfg.model):
        raise DistilkitError(f"{cfg.model}: --method torchao quantizes a PyTorch model; pass the model or run folder")
    output = cfg.output or default_output(cfg.model, f"int8-{cfg.method}")
    run = RunFolder(output, cfg.overwrite, resumable=False, what="quantization")
    run.check()
    opts = with_run_data(cfg, cfg.model, "the accuracy check (and calibration)")
    reference_model = load_trained(cfg.model, cfg.max_length)
    cfg.max_length = reference_model.max_length
    data, split, rows = split_rows_for(reference_model, opts, cfg.eval_split, as_in_training=True)
    if cfg.method == "static":
        # read before any work, so wrong-task or missing calibration data fails with nothing written
        calibration = calibration_rows(reference_model, opts, cfg.calibration_samples)
        check_held_out(calibration, rows, data.name, split)
    else:
        calibration = None

    with tempfile.TemporaryDirectory(prefix="distilkit-quantize-") as tmp:
        source = Path(cfg.model) if cfg.method == "torchao" else fp32_onnx_folder(cfg, Path(tmp))
        work = run.prepare()
        try:
            if cfg.method == "torchao":
                settings = quantize_torchao(resolve_model(cfg.model), work, reference_model)
            else:
                settings = quantize_onnx(source, work, cfg, reference_model, calibration)
                for name in source.iterdir():  # tokenizer, config and metadata travel with the graph
                    if name.is_file() and name.name != ONNX_FILE:
                        shutil.copy2(name, work / name.name)
            quantized = load_trained(str(work))
            ref_metrics, ref_logits = score_rows(reference_model, data, rows, cfg.max_length, cfg.batch_size)
            new_metrics, new_logits = score_rows(quantized, data, rows, cfg.max_length, cfg.batch_size)
            metric = default_metric(data.task, reference_model.regression, data.is_bio)[0]
            report = {
                "quantization": settings,
                "evaluated_on": f"{data.name} ({split}, {len(rows)} examples)",
                **compare(ref_metrics, new_metrics, ref_logits, new_logits, metric),
                "size_bytes": {
                    "fp32": folder_bytes(Path(resolve_model(cfg.model)) if cfg.method == "torchao" else source),
                    "int8": folder_bytes(work),
                },
                "quantized_from": str(Path(cfg.model).resolve()),
            }
            write_json(work / "quantize_report.json", report)
            if cfg.method != "torchao":
                meta = {
                    **read_meta(work),
                    "quantization": settings,
                    "quantized_from": report["quantized_from"],
                    "size_bytes": (work / ONNX_FILE).stat().st_size,
                }
                write_json(work / META_FILE, meta)
            quantize_card(work, cfg.model, report)
            final = run.finish()
        except BaseException as err:
            run.fail(err)
    sizes = report["size_bytes"]
    change = report["change"]
    show(f"quantized ({cfg.method}) → {final}: {sizes['fp32'] / 1e6:.1f} MB → {sizes['int8'] / 1e6:.1f} MB")
    show(
        f"{metric} on {report['evaluated_on']}: fp32 {report['fp32']:.4f} → int8 {report['int8']:.4f} "
        f"({change:+.4f}); max |logit difference| {report['max_abs_logit_diff']:.3f}, "
        f"mean {report['mean_abs_logit_diff']:.4f}; same prediction on {100 * report['agreement']:.1f}%"
    )
    return final
