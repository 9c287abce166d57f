"""Lookups over one ONNX graph for the rewrites of ONNX Runtime's int8 graph: who writes and who reads
each tensor, and the constants they read; and the node-list steps after a rewrite (order, dead nodes)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

#: The default ONNX domain, as nodes write it.
STANDARD_DOMAINS = ("", "ai.onnx")


class GraphIndex:
    """Producers, readers, initializers and outputs of ``graph`` as it is when built (rebuild after edits)."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.initializers = {init.name: init for init in graph.initializer}
        self.producers = {out: node for node in graph.node for out in node.output}
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.outputs = {value.name for value in graph.output}

    def producer(self, tensor: str, op_type: str, domains: tuple[str, ...] = STANDARD_DOMAINS) -> onnx.NodeProto | None:
        """The node writing ``tensor`` if it is an ``op_type`` of one of ``domains``, else None."""
        node = self.producers.get(tensor)
        return node if node is not None and node.op_type == op_type and node.domain in domains else None

    def sole_reader(self, tensor: str, op_type: str) -> onnx.NodeProto | None:
        """The one node reading ``tensor``, if it is an ``op_type`` and ``tensor`` is no graph output."""
        readers = self.readers.get(tensor, [])
        if len(readers) != 1 or readers[0].op_type != op_type or tensor in self.outputs:
            return None
        return readers[0]

    def constant(self, tensor: str) -> np.ndarray | None:
        """The value of ``tensor`` when an initializer or a Constant node holds it."""
        init = self.initializers.get(tensor)
        if init is not None:
            return numpy_helper.to_array(init)
        node = self.producers.get(tensor)
        if node is not None and node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            return numpy_helper.to_array(node.attribute[0].t)
        return None

    def scalar(self, tensor: str) -> float | None:
        """``tensor``'s value when it is a constant float with one element."""
        value = self.constant(tensor)
        return float(value.item()) if value is not None and value.size == 1 and value.dtype.kind == "f" else None


def attribute(node: onnx.NodeProto, name: str, default: object = None) -> object:
    """``node``'s attribute ``name`` as a Python value, or ``default``."""
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def topological(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    """``nodes`` in an order where each node follows its inputs' producers (stable otherwise)."""
    ordered, pending, ready = [], list(nodes), set(available)
    while pending:
        waiting = []
        for node in pending:
            if all(not name or name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise ValueError(f"the graph has a cycle or a missing input at {waiting[0].name or waiting[0].op_type}")
        pending = waiting
    return ordered


def live_nodes(nodes: list[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    """``nodes`` without those whose outputs nothing reads (in reverse, so whole dead chains go)."""
    needed, kept = set(outputs), []
    for node in reversed(nodes):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(node.input)
    return kept[::-1]
