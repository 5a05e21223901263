"""Fuse attention whose scores carry an additive bias into ONNX Runtime's MultiHeadAttention (distilkit's pass).

ONNX Runtime's transformer optimizer fuses the LayerNorms and GELUs of BERT-family models but, in graphs that
transformers 5 and torch.onnx's dynamo exporter write, none of their attentions: MPNet adds a relative position
bias to the scores, and the others go through scaled_dot_product_attention, which the exporter decomposes into
a pattern the optimizer does not know. Per layer:

    q, k, v = Add(MatMul(x, W), b) → Reshape(B, S, N, d) → Transpose           (B, N, S, d)
    scores  = MatMul(q, kᵀ) / √d                              (MPNet's code: k transposed to (B, N, d, S))
            | MatMul(q · d^-¼, kᵀ · d^-¼)                     (SDPA: kᵀ through Reshape/Transpose/Reshape)
    probs   = Softmax(scores + bias₁ + bias₂ + ...)           (position bias, padding mask; SDPA then replaces
                                                               NaN rows by 0: `Where(IsNaN(p), 0, p)`)
    context = Reshape(Transpose(MatMul(probs, v)), (B, S, N·d))

becomes `context = MultiHeadAttention(q, k, v, attention_bias=bias₁ + bias₂ + ..., num_heads=N, scale=1/√d)`:
one kernel instead of about fourteen nodes, and the bias sum computed once for all layers that share it. The
caller keeps the fused graph only if the parity check still passes, so a pattern matched wrongly costs speed,
never correctness.

Where q, k and v are projections of the same input with constant weights, they then become one product and a
Split: `q, k, v = Split(Add(MatMul(x, [W_q | W_k | W_v]), [b_q | b_k | b_v]))`. After dynamic int8, x is
quantized once either way, but one 312 x 936 product runs faster than three 312 x 312 ones, whose time is mostly
fixed cost (the 4L-312 student: ~2.5% of its run, after the Split's copy).
"""

from __future__ import annotations

import numpy as np

from distilkit.compress.onnx_graph import GraphIndex, topological_sort

Q_PERM, K_PERM = [0, 2, 1, 3], [0, 2, 3, 1]


def _perm(node) -> list[int]:
    return next((list(a.ints) for a in node.attribute if a.name == "perm"), [])


def _projection(g: GraphIndex, tensor: str, perm: list[int]) -> str | None:
    """The (B, S, N·d) projection `Add(MatMul(x, W), b)` behind `Transpose(Reshape(...))`, or None."""
    transpose = g.made_by(tensor, "Transpose")
    if transpose is None or _perm(transpose) != perm:
        return None
    reshape = g.made_by(transpose.input[0], "Reshape")
    add = reshape and g.made_by(reshape.input[0], "Add")
    return add.output[0] if add is not None and g.made_by(add.input[0], "MatMul") else None


def _transposed_key(g: GraphIndex, tensor: str) -> str | None:
    """SDPA's kᵀ: `Reshape(Transpose(Reshape(k, (B·N, S, d)), (0, 2, 1)), (B, N, d, S))` of a (B, N, S, d) key."""
    outer = g.made_by(tensor, "Reshape")
    transpose = outer and g.made_by(outer.input[0], "Transpose")
    inner = transpose and _perm(transpose) == [0, 2, 1] and g.made_by(transpose.input[0], "Reshape")
    return _projection(g, inner.input[0], Q_PERM) if inner else None


def _scaled_scores(g: GraphIndex, tensor: str) -> tuple | None:
    """(q, k, scale) behind the attention scores: `MatMul(q, kᵀ) / √d` (MPNet's code), or `MatMul(q·s, kᵀ·s)` with
    s = d^-¼ (transformers' scaled_dot_product_attention path, as the dynamo exporter decomposes it)."""
    div = g.made_by(tensor, "Div")
    if div is not None:
        scores, divisor = g.made_by(div.input[0], "MatMul"), g.scalar(div.input[1])
        if not (scores and divisor):
            return None
        return _projection(g, scores.input[0], Q_PERM), _projection(g, scores.input[1], K_PERM), 1.0 / divisor
    scores = g.made_by(tensor, "MatMul")
    q_mul, k_mul = (scores and g.made_by(scores.input[i], "Mul") for i in (0, 1))
    q_scale, k_scale = (mul and g.scalar(mul.input[1]) for mul in (q_mul, k_mul))
    if not (q_scale and k_scale):
        return None
    return _projection(g, q_mul.input[0], Q_PERM), _transposed_key(g, k_mul.input[0]), q_scale * k_scale


def _unguarded(g: GraphIndex, probs: str) -> str:
    """SDPA's `Where(IsNaN(p), 0, p)` after the softmax → its output, else `probs`. A row is NaN only when every
    key is masked with -inf; the masks here use the dtype's minimum, and MultiHeadAttention gives such a row a
    uniform softmax like the unfused graph, so dropping the guard changes nothing (the parity check runs after)."""
    readers = g.readers.get(probs, [])
    isnan = next((r for r in readers if r.op_type == "IsNaN"), None)
    where = next((r for r in readers if r.op_type == "Where" and r.input[2] == probs), None)
    if len(readers) == 2 and isnan and where and where.input[0] == isnan.output[0] and g.scalar(where.input[1]) == 0:
        return where.output[0]
    return probs


def _match(g: GraphIndex, softmax) -> dict | None:
    """One layer's attention around `softmax`: its q/k/v projections, bias terms, scale and output tensor."""
    biases, tensor = [], softmax.input[0]
    while (add := g.made_by(tensor, "Add")) is not None:  # Softmax(((scores / √d) + bias₁) + bias₂ ...)
        biases.insert(0, add.input[1])
        tensor = add.input[0]
    found = _scaled_scores(g, tensor)
    if not (biases and found):
        return None
    q, k, scale = found
    context = g.only_reader(_unguarded(g, softmax.output[0]), "MatMul")
    back = context and g.only_reader(context.output[0], "Transpose")
    merge = back and _perm(back) == Q_PERM and g.only_reader(back.output[0], "Reshape")
    v = context and _projection(g, context.input[1], Q_PERM)
    if not (merge and q and k and v):
        return None
    return {"q": q, "k": k, "v": v, "biases": biases, "scale": scale, "output": merge}


def _prune_and_sort(graph) -> None:
    """Drop nodes nothing reads any more, then restore the topological order ONNX requires."""
    outputs = {out.name for out in graph.output}
    while True:
        wanted = outputs | {name for node in graph.node for name in node.input}
        dead = [n for n in graph.node if not any(o in wanted for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    read = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in read]:  # the Reshape shapes, the √d divisors
        graph.initializer.remove(init)
    topological_sort(graph)


def _merge_projections(g: GraphIndex, model, layer: dict, i: int, shared: dict) -> list:
    """One MatMul + Add + Split in place of the q, k, v projections of one layer (module docstring), or [].
    `shared` maps the source weights' names to the layer whose merged weights hold them: layers that share their
    weights (ALBERT) share the merged ones too, instead of one copy per layer."""
    from onnx import helper, numpy_helper

    adds = [g.made_by(layer[name], "Add") for name in ("q", "k", "v")]
    products = [g.made_by(add.input[0], "MatMul") for add in adds]
    weights = [g.array(mm.input[1]) for mm in products]
    biases = [g.array(add.input[1]) for add in adds]
    arrays = weights + biases
    if len({mm.input[0] for mm in products}) != 1 or any(a is None for a in arrays):
        return []  # other inputs (cross-attention) or weights not readable here (external data)
    if any(w.ndim != 2 for w in weights) or any(b.ndim != 1 for b in biases):
        return []
    first = shared.setdefault(tuple(mm.input[1] for mm in products) + tuple(add.input[1] for add in adds), i)
    names = [f"qkv_weight_{first}", f"qkv_bias_{first}", f"qkv_sizes_{first}"]
    if first == i:
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(np.concatenate(weights, axis=1), names[0]),
                numpy_helper.from_array(np.concatenate(biases), names[1]),
                numpy_helper.from_array(np.array([w.shape[1] for w in weights], dtype=np.int64), names[2]),
            ]
        )
    for add in adds:  # their outputs now come from the Split; the MatMuls they read are pruned as dead
        model.graph.node.remove(add)
    return [
        helper.make_node("MatMul", [products[0].input[0], names[0]], [f"qkv_{i}_product"], name=f"qkv_{i}_matmul"),
        helper.make_node("Add", [f"qkv_{i}_product", names[1]], [f"qkv_{i}"], name=f"qkv_{i}_add"),
        helper.make_node("Split", [f"qkv_{i}", names[2]], [a.output[0] for a in adds], name=f"qkv_{i}_split", axis=-1),
    ]


def fuse_biased_attention(model, num_heads: int) -> dict[str, int]:
    """Rewrite every matching attention of an onnx ModelProto in place; returns how many attentions were fused
    and in how many of them q, k and v became one product."""
    from onnx import helper

    g = GraphIndex(model.graph)
    layers = [m for s in model.graph.node if s.op_type == "Softmax" and (m := _match(g, s))]
    if not layers:
        return {}
    new, bias_sums, merged, shared = [], {}, 0, {}
    for i, layer in enumerate(layers):
        key = tuple(layer["biases"])
        if key not in bias_sums:  # the position bias and the padding mask are the same in every layer
            total = key[0]
            for j, term in enumerate(key[1:]):
                total_next = f"attention_bias_{len(bias_sums)}_{j}"
                new.append(helper.make_node("Add", [total, term], [total_next], name=f"{total_next}_add"))
                total = total_next
            bias_sums[key] = total
        merge = layer["output"]
        inputs = [layer["q"], layer["k"], layer["v"], "", "", bias_sums[key]]
        new.append(
            helper.make_node(
                "MultiHeadAttention",
                inputs,
                [merge.output[0]],
                name=f"MultiHeadAttention_{i}",
                domain="com.microsoft",
                num_heads=num_heads,
                scale=float(np.float32(layer["scale"])),
            )
        )
        model.graph.node.remove(merge)
        projection = _merge_projections(g, model, layer, i, shared)
        new += projection
        merged += bool(projection)
    model.graph.node.extend(new)
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    _prune_and_sort(model.graph)
    return {"MultiHeadAttention": len(layers), "QKVMatMul": merged}
