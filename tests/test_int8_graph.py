"""What export and dynamic int8 leave for ONNX Runtime's kernels in an MPNet student (the batch-1 speed work of
benchmarks/onnx_fusions.py), checked on the graph as ONNX Runtime optimizes it when it loads it: q, k and v as
one product, Gelu apart from its bias (which goes into the int8 product), the attention bias kept fp32."""

import json

import numpy as np
import onnx
import pytest
import torch
from conftest import run_cli, topic_rows, write_csv
from families import build_family_classifier
from test_export_patches import padded_batch

from distilkit.inference.onnx_model import open_session, session_options


def loaded_graph(model_file, tmp_path):
    """The graph ONNX Runtime runs: the file's, after the fusions it applies at load time."""
    options = session_options(1)
    options.optimized_model_filepath = str(tmp_path / "as-loaded.onnx")
    open_session(model_file, options=options)
    return onnx.load(str(tmp_path / "as-loaded.onnx")).graph


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny MPNet classifier and its default export, shared by this module's tests: (model, onnx folder)."""
    from distilkit.cli import run

    root = tmp_path_factory.mktemp("int8-graph")
    folder, model = build_family_classifier(root, "mpnet")
    run([str(a) for a in ("export", "--model", folder, "--output", root / "onnx")])
    return model, root / "onnx"


def test_mpnet_export_computes_q_k_v_in_one_product_and_leaves_gelu_apart_from_its_bias(exported):
    model, onnx_dir = exported
    graph = onnx.load(str(onnx_dir / "model.onnx")).graph
    producer = {out: node for node in graph.node for out in node.output}
    weights = {init.name: init for init in graph.initializer}
    layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
    attention = [n for n in graph.node if n.op_type == "MultiHeadAttention"]
    assert len(attention) == layers
    for node in attention:
        split = producer[node.input[1]]
        query = node.input[0] if producer[node.input[0]] is split else producer[node.input[0]].input[0]
        assert node is attention[-1] or query == node.input[0]  # the last layer's query: token 0 (first_token)
        assert split.op_type == "Split" and list(split.output) == [query, *node.input[1:3]]
        product = producer[producer[split.input[0]].input[0]]
        assert product.op_type == "MatMul" and list(weights[product.input[1]].dims) == [hidden, 3 * hidden]
    kinds = [n.op_type for n in graph.node]
    assert "BiasGelu" not in kinds and kinds.count("Gelu") == layers
    # the parity check ran on the rewritten graph (the export would have failed otherwise)
    meta = json.loads((onnx_dir / "distilkit_onnx.json").read_text())
    assert meta["parity"]["max_abs_logit_diff_optimized"] <= 1e-4
    assert meta["fused_operators"]["QKVMatMul"] == meta["fused_operators"]["MultiHeadAttention"] == layers
    # the last attention, its output product, 2 LayerNorms, the feed-forward, biases and residuals: token 0 only
    assert meta["fused_operators"]["FirstTokenOnly"] == 12


def test_dynamic_int8_mpnet_folds_every_bias_into_its_product_and_keeps_the_attention_bias_fp32(
    exported, tmp_path, capsys
):
    model, onnx_dir = exported
    data = write_csv(tmp_path / "topics.csv", topic_rows(60, seed=4))
    args = ["quantize", "--model", onnx_dir, "--method", "dynamic", "--data", data, "--split", "0.8,0.1,0.1"]
    code, _, err = run_cli([*args, "--output", tmp_path / "int8"], capsys)
    assert code == 0, err
    fp32 = onnx.load(str(onnx_dir / "model.onnx")).graph
    products = sum(n.op_type in ("MatMul", "Gemm") for n in fp32.node)
    graph = loaded_graph(tmp_path / "int8" / "model.onnx", tmp_path)
    producer = {out: node for node in graph.node for out in node.output}
    int8_products = [n for n in graph.node if n.op_type in ("DynamicQuantizeMatMul", "MatMulIntegerToFloat")]
    assert len(int8_products) == products
    gelus = [n for n in graph.node if n.op_type == "Gelu"]
    assert len(gelus) == model.config.num_hidden_layers and "BiasGelu" not in {n.op_type for n in graph.node}
    for gelu in gelus:  # the up-projection's bias went into its int8 product (a BiasGelu used to take it)
        product = producer[gelu.input[0]]
        assert product.op_type == "DynamicQuantizeMatMul" and len(product.input) > 4 and product.input[4]
    todo, upstream = [n.input[5] for n in graph.node if n.op_type == "MultiHeadAttention"], {}
    while todo:  # everything the attention bias is computed from
        node = producer.get(todo.pop())
        if node is not None and node.name not in upstream:
            upstream[node.name] = node.op_type
            todo += list(node.input)
    assert "Gather" in upstream.values() and "DequantizeLinear" not in upstream.values(), upstream
    kept = json.loads((tmp_path / "int8" / "quantize_report.json").read_text())["quantization"]["kept_fp32"]
    assert any("index_select" in name for name in kept), kept  # the position-bias table's lookup
    session = open_session(tmp_path / "int8" / "model.onnx")
    batch = padded_batch(model.config.vocab_size)
    with torch.no_grad():
        reference = model(**batch).logits.numpy()
    logits = session.run(None, {k: v.numpy() for k, v in batch.items()})[0]
    # int8 moves the logits a little (activations quantized per batch), never the predictions here
    assert (logits.argmax(-1) == reference.argmax(-1)).all() and np.abs(logits - reference).max() < 0.5
