"""Export pass: a sequence classifier that reads one token computes its last layer for that token only.

BERT's pooler and the RoBERTa, ELECTRA, DistilBERT and MPNet classification heads read `hidden[:, 0]`, the
first token of the last layer: `Gather(hidden, 0, axis=1)` in the exported graph. Everything between the last
attention and that read acts on each token alone (products with constant weights, bias and residual Adds,
LayerNorm, GELU), so it gives the same logits computed for token 0 only; the last attention needs every token's
keys and values but only token 0's query. The pass moves a `Slice(·, 0:1, axis=1)` up from the Gather through
such nodes, as far as it can, and into a fused MultiHeadAttention's query (and the matching row of its
attention bias). On a 4-layer student that is a quarter of the encoder's output and feed-forward products on
1 row instead of n.

It never changes what a node computes for token 0: a node moves behind the Slice only if every reader of its
output reads token 0 alone (the Gather, or nodes already moved), its other inputs are constants or broadcast
over tokens, and the ranks it needs are known. Anything else (token classification, a graph that also outputs
the hidden states, an unfused attention) stops the walk there; the export's parity check runs afterwards.
"""

from __future__ import annotations

import numpy as np

from distilkit.compress.onnx_graph import GraphIndex, int_attribute, topological_sort

# Ops that compute each token's output from that token's inputs alone (along axis 1 of (batch, tokens, ...)).
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Gelu", "FastGelu", "BiasGelu", "QuickGelu", "Relu", "Tanh"}
ELEMENTWISE |= {"Erf", "Sqrt", "Sigmoid", "Cast", "Identity"}
NORMS = {"LayerNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization"}


def _ranks(graph) -> dict[str, int]:
    """Known ranks: the exporter's value_info (it annotates every activation), inputs and initializers."""
    ranks = {t.name: len(t.type.tensor_type.shape.dim) for t in [*graph.value_info, *graph.input, *graph.output]}
    ranks.update({t.name: len(t.dims) for t in graph.initializer})
    return ranks


def _first_token_read(g: GraphIndex, graph, ranks: dict) -> object | None:
    """The one `Gather(hidden, 0, axis=1)` of a (batch, tokens, hidden) tensor, or None."""
    reads = [
        n
        for n in graph.node
        if n.op_type == "Gather"
        and int_attribute(n, "axis", 0) == 1
        and ranks.get(n.input[0]) == 3
        and g.scalar(n.input[1]) == 0
    ]
    return reads[0] if len(reads) == 1 else None


def _token_inputs(node, g: GraphIndex, ranks: dict) -> list[str] | None:
    """The inputs of `node` that carry the token axis (to be cut to token 0), or None if the node cannot move."""
    constant = [name for name in node.input if name and name in g.constants]
    if node.op_type == "MatMul":
        return [node.input[0]] if node.input[1] in g.constants and ranks.get(node.input[1]) == 2 else None
    if node.op_type in NORMS:
        axis = int_attribute(node, "axis", -1)
        moving = node.input[:2] if node.op_type == "SkipLayerNormalization" else node.input[:1]
        others_constant = all(name in g.constants for name in node.input[len(moving) :] if name)
        return list(moving) if axis in (-1, 2) and others_constant else None
    if node.op_type == "MultiHeadAttention":
        extra = list(node.input[4:5]) + list(node.input[6:])  # key padding mask (its rank varies), past k/v
        unidirectional = int_attribute(node, "unidirectional", 0)
        keyed = len(node.input) > 2 and node.input[1] and node.input[2] and ranks.get(node.input[0]) == 3
        return [node.input[0]] if keyed and not any(extra) and not unidirectional else None
    if node.op_type in ELEMENTWISE:
        moving = []
        for name in (n for n in node.input if n and n not in constant):
            if ranks.get(name) not in (0, 1, 3):  # unknown, or (tokens, hidden) without the batch axis
                return None
            moving += [name] if ranks[name] == 3 else []
        # a constant must broadcast over batch and tokens (a bias); one of shape (n, hidden) would not
        broadcast = all(all(d == 1 for d in g.constants[name].dims[:-1]) for name in constant)
        return moving if moving and broadcast else None
    return None


def _movable(graph, g: GraphIndex, read, ranks: dict) -> dict[str, list[str]]:
    """Nodes that can compute token 0 only, by their first output (names may be empty) → their inputs to cut.
    Readers come before producers in reverse topological order, so a node's readers are decided when it is
    reached."""
    outputs = {t.name for t in graph.output}
    moved: dict[str, list[str]] = {}
    for node in reversed(graph.node):
        used = [name for name in node.output if name and g.readers.get(name)]
        if used != [node.output[0]] or any(name in outputs for name in node.output):
            continue  # only its first output may be read (SkipLayerNormalization's extras must be unused)
        token_only = all(
            (reader.output[0] == read.output[0] and node.output[0] == read.input[0])
            or node.output[0] in moved.get(reader.output[0], ())
            for reader in g.readers[node.output[0]]
        )
        inputs = token_only and ranks.get(node.output[0]) == 3 and _token_inputs(node, g, ranks)
        if inputs:
            moved[node.output[0]] = inputs
    return moved


def compute_first_token_only(model) -> int:
    """Rewrite an onnx ModelProto in place (module docstring); returns how many nodes now run on token 0 only."""
    from onnx import helper, numpy_helper

    graph = model.graph
    g, ranks = GraphIndex(graph), _ranks(graph)
    read = _first_token_read(g, graph, ranks)
    moved = _movable(graph, g, read, ranks) if read is not None else {}
    if not moved:
        return 0
    infos = {v.name: v for v in graph.value_info}
    cuts: dict[tuple[str, int], str] = {}

    def cut(tensor: str, axis: int) -> str:
        """`tensor[..., 0:1, ...]` along `axis`, once per tensor."""
        if (tensor, axis) not in cuts:
            cuts[(tensor, axis)] = f"{tensor}_first_token"
            bounds = [f"first_token_{what}_{axis}" for what in ("starts", "ends", "axes")]
            for name, value in zip(bounds, (0, 1, axis)):
                if name not in g.constants:
                    g.constants[name] = numpy_helper.from_array(np.array([value], dtype=np.int64), name)
                    graph.initializer.append(g.constants[name])
            graph.node.append(
                helper.make_node("Slice", [tensor, *bounds], [cuts[(tensor, axis)]], name=f"{tensor}_cut")
            )
            if tensor in infos:  # quantize's calibration reads every activation's type from value_info
                graph.value_info.append(_one_long(infos[tensor], axis, cuts[(tensor, axis)]))
        return cuts[(tensor, axis)]

    for node in [n for n in graph.node if n.output[0] in moved]:
        for i, name in enumerate(node.input):
            if name in moved[node.output[0]] and name not in moved:  # made by a node that keeps every token
                node.input[i] = cut(name, 1)
        if node.op_type == "MultiHeadAttention" and len(node.input) > 5 and node.input[5]:
            node.input[5] = cut(node.input[5], 2)  # (batch or 1, heads, query tokens, key tokens)
    for name in [out for node in graph.node if node.output[0] in moved for out in node.output if out in infos]:
        infos[name].CopyFrom(_one_long(infos[name], 1))  # the token axis is now 1 long
    topological_sort(graph)
    return len(moved)


def _one_long(info, axis: int, name: str | None = None):
    """A copy of the value_info `info` with `axis` of length 1 (and the new tensor's name)."""
    copy = type(info)()
    copy.CopyFrom(info)
    copy.name = name or info.name
    dims = copy.type.tensor_type.shape.dim
    if len(dims) > axis:
        dims[axis].Clear()
        dims[axis].dim_value = 1
    return copy
