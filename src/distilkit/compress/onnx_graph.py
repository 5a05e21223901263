"""Lookups over one onnx GraphProto, shared by the graph passes (attention fusion, quantize's node exclusions)."""

from __future__ import annotations

import numpy as np


class GraphIndex:
    """Who produces a tensor, who reads it, and the values of constant (initializer) tensors."""

    def __init__(self, graph):
        self.producer = {out: node for node in graph.node for out in node.output}
        self.readers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.constants = {init.name: init for init in graph.initializer}

    def made_by(self, tensor: str, op_type: str):
        node = self.producer.get(tensor)
        return node if node is not None and node.op_type == op_type else None

    def only_reader(self, tensor: str, op_type: str):
        readers = self.readers.get(tensor, [])
        return readers[0] if len(readers) == 1 and readers[0].op_type == op_type else None

    def array(self, tensor: str) -> np.ndarray | None:
        """The initializer's values; None if `tensor` is not one or is kept as external data not loaded (graphs
        over 2 GB read with load_external_data=False): callers treat that as unknown."""
        from onnx import numpy_helper

        if tensor not in self.constants:
            return None
        try:
            return numpy_helper.to_array(self.constants[tensor])
        except (ValueError, OSError):
            return None

    def scalar(self, tensor: str) -> float | None:
        value = self.array(tensor)
        return float(value) if value is not None and value.size == 1 else None


def int_attribute(node, name: str, default: int | None) -> int | None:
    """A node's integer attribute (`axis`, `to`, ...), or `default` when the node does not set it."""
    return next((a.i for a in node.attribute if a.name == name), default)


def topological_sort(graph) -> None:
    """Put the nodes back in the topological order ONNX requires, after a pass appended or rewired some."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    order, pending = [], list(graph.node)
    while pending:
        runnable = [n for n in pending if all(i in ready for i in n.input)]
        if not runnable:
            raise ValueError("a graph pass left a cycle or an input nothing produces")
        for node in runnable:
            order.append(node)
            ready.update(node.output)
            pending.remove(node)
    del graph.node[:]
    graph.node.extend(order)
