"""compress/first_token.py: the nodes after the last attention of a sequence classifier run on token 0 only, with
the same logits; a tensor anything else reads in full, or a graph without a first-token read, stays as it was.
Hand-built graphs (the shapes export writes), run by ONNX Runtime before and after the pass."""

import copy

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from distilkit.compress.first_token import compute_first_token_only
from distilkit.inference.onnx_model import open_session

HIDDEN, HEADS = 8, 2
RNG = np.random.default_rng(0)


def weight(name, *shape):
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def layer_graph(outputs=("logits",), read_first_token=True, attention_bias=True):
    """x (batch, tokens, 8) → MultiHeadAttention(x W_q, x W_k, x W_v, bias) → output product + residual Add →
    LayerNorm → up product, Gelu, down product + residual → LayerNorm → `hidden[:, 0]` → classifier."""
    nodes = [helper.make_node("MatMul", ["x", f"w_{p}"], [p]) for p in "qkv"] + [
        helper.make_node(
            "MultiHeadAttention",
            ["q", "k", "v", "", "", "bias" if attention_bias else ""],
            ["context"],
            domain="com.microsoft",
            num_heads=HEADS,
        ),
        helper.make_node("MatMul", ["context", "w_o"], ["projected"]),
        helper.make_node("Add", ["projected", "b_o"], ["biased"]),
        helper.make_node("Add", ["biased", "x"], ["residual"]),
        helper.make_node("LayerNormalization", ["residual", "gamma", "beta"], ["normed"], axis=-1),
        helper.make_node("MatMul", ["normed", "w_up"], ["up"]),
        helper.make_node("Gelu", ["up"], ["gelu"], domain="com.microsoft"),
        helper.make_node("MatMul", ["gelu", "w_down"], ["down"]),
        helper.make_node("Add", ["down", "normed"], ["residual2"]),
        helper.make_node("LayerNormalization", ["residual2", "gamma", "beta"], ["hidden"], axis=-1),
    ]
    if read_first_token:
        nodes += [
            helper.make_node("Gather", ["hidden", "zero"], ["first"], axis=1),
            helper.make_node("Gemm", ["first", "w_cls"], ["logits"]),
        ]
    inits = [weight(f"w_{p}", HIDDEN, HIDDEN) for p in "qkvo"] + [weight("b_o", HIDDEN)]
    inits += [weight("gamma", HIDDEN), weight("beta", HIDDEN), weight("w_up", HIDDEN, 16), weight("w_down", 16, HIDDEN)]
    inits += [weight("w_cls", HIDDEN, 3), numpy_helper.from_array(np.array(0, np.int64), "zero")]
    shape3 = ["batch", "tokens", HIDDEN]
    infos = [helper.make_tensor_value_info(t, TensorProto.FLOAT, shape3) for t in ("x", "context", "hidden")]
    infos += [helper.make_tensor_value_info(t, TensorProto.FLOAT, shape3) for t in "qkv"]
    infos += [helper.make_tensor_value_info(t, TensorProto.FLOAT, shape3) for t in ("projected", "biased")]
    infos += [helper.make_tensor_value_info(t, TensorProto.FLOAT, shape3) for t in ("residual", "normed", "down")]
    infos += [helper.make_tensor_value_info(t, TensorProto.FLOAT, ["batch", "tokens", 16]) for t in ("up", "gelu")]
    infos += [helper.make_tensor_value_info("residual2", TensorProto.FLOAT, shape3)]
    by_name = {i.name: i for i in infos}
    by_name["logits"] = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])
    by_name["bias"] = helper.make_tensor_value_info("bias", TensorProto.FLOAT, [1, HEADS, "tokens", "tokens"])
    inputs = [by_name["x"]] + ([by_name["bias"]] if attention_bias else [])
    graph = helper.make_graph(
        nodes,
        "layer",
        inputs,
        [by_name[o] for o in outputs],
        inits,
        value_info=[i for n, i in by_name.items() if n not in ("x", "bias", *outputs)],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets)


def run(model, tmp_path, name):
    onnx.save(model, str(tmp_path / f"{name}.onnx"))
    session = open_session(tmp_path / f"{name}.onnx", threads=1)
    rng = np.random.default_rng(1)  # the same inputs for the graph before and after the pass
    bias = rng.standard_normal((1, HEADS, 5, 5)).astype(np.float32)
    bias[..., 3:] = -1e4  # two padded key tokens, as a padding mask folded into the bias
    feed = {"x": rng.standard_normal((2, 5, HIDDEN)).astype(np.float32), "bias": bias}
    return session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})


@pytest.mark.parametrize("attention_bias", [True, False])
def test_last_layer_runs_on_token_0_with_the_same_logits(tmp_path, attention_bias):
    model = layer_graph(attention_bias=attention_bias)
    cut = copy.deepcopy(model)
    # the query's product, the attention and every node after it up to the LayerNorm
    assert compute_first_token_only(cut) == 11
    onnx.checker.check_model(cut)
    kinds = {n.op_type: n for n in cut.graph.node}
    attention = kinds["MultiHeadAttention"]
    producer = {out: n for n in cut.graph.node for out in n.output}
    query = producer[attention.input[0]]  # token 0's query: its product reads x cut to token 0
    assert query.op_type == "MatMul" and producer[query.input[0]].op_type == "Slice"
    assert attention.input[1] == "k" and attention.input[2] == "v"  # keys and values: every token
    if attention_bias:
        assert producer[attention.input[5]].op_type == "Slice"  # the bias rows of query token 0
    # x is cut once, for the query's product and the residual Add that reads it
    assert sum(n.op_type == "Slice" for n in cut.graph.node) == 1 + attention_bias
    before, after = run(model, tmp_path, "before"), run(cut, tmp_path, "after")
    np.testing.assert_allclose(after[0], before[0], rtol=1e-5, atol=1e-5)


def test_a_tensor_also_read_in_full_stays_full(tmp_path):
    """The last hidden states as a second graph output: the nodes before them keep every token."""
    model = layer_graph(outputs=("logits", "hidden"))
    cut = copy.deepcopy(model)
    assert compute_first_token_only(cut) == 0
    before, after = run(model, tmp_path, "before"), run(cut, tmp_path, "after")
    assert after[1].shape == before[1].shape == (2, 5, HIDDEN)
    np.testing.assert_allclose(after[0], before[0], rtol=1e-6)


def test_residual_read_in_full_elsewhere_is_cut_not_moved(tmp_path):
    """With `up` a graph output, the up-projection keeps every token, and so does `normed`, which it reads: the
    walk moves the last LayerNorm, the residual Add, the down-projection and Gelu, and cuts `up` and `normed`."""
    model = layer_graph(outputs=("logits", "up"))
    cut = copy.deepcopy(model)
    assert compute_first_token_only(cut) == 4
    cut_inputs = {n.input[0] for n in cut.graph.node if n.op_type == "Slice"}
    assert cut_inputs == {"up", "normed"}
    before, after = run(model, tmp_path, "before"), run(cut, tmp_path, "after")
    np.testing.assert_allclose(after[1], before[1], rtol=1e-6)
    np.testing.assert_allclose(after[0], before[0], rtol=1e-5, atol=1e-5)


def test_a_graph_without_a_first_token_read_is_left_as_it_is():
    """Token classification: every token's output is read."""
    model = layer_graph(outputs=("hidden",), read_first_token=False)
    cut = copy.deepcopy(model)
    assert compute_first_token_only(cut) == 0
    assert cut == model


def test_a_constant_with_a_token_axis_is_not_cut_as_a_bias(tmp_path):
    """`x + positions` with a (5, hidden) table: that Add is per token, but its table is not a bias broadcast over
    tokens, so it stays on every token and only the LayerNorm after it moves."""
    shape3 = ["batch", "tokens", HIDDEN]
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "positions"], ["placed"]),
            helper.make_node("LayerNormalization", ["placed", "gamma", "beta"], ["hidden"], axis=-1),
            helper.make_node("Gather", ["hidden", "zero"], ["logits"], axis=1),
        ],
        "positions",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape3)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", HIDDEN])],
        [weight("positions", 5, HIDDEN), weight("gamma", HIDDEN), weight("beta", HIDDEN)]
        + [numpy_helper.from_array(np.array(0, np.int64), "zero")],
        value_info=[helper.make_tensor_value_info(t, TensorProto.FLOAT, shape3) for t in ("placed", "hidden")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    cut = copy.deepcopy(model)
    assert compute_first_token_only(cut) == 1
    np.testing.assert_allclose(run(cut, tmp_path, "after")[0], run(model, tmp_path, "before")[0], rtol=1e-6)
