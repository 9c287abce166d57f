"""ONNX Runtime's int8 graph: a residual Add reads the LayerNorm output itself, not its int8 round trip.

In a post-LayerNorm encoder (BERT) a LayerNorm output is both the next layer's input, which ORT's scheme
quantizes for the projections, and the residual of that layer's Add, which stays float. With a
Q/DQ pair per consumer the quantizer gives the Add one too: ``DequantizeLinear(QuantizeLinear(x))``
that no integer kernel absorbs, so ORT runs it as a DequantizeLinear pass per layer (0.39 ms of a
paper-size late MobileNetV2 int8 graph's 30 here) and the residual stream carries int8 rounding the
fp32 model does not have. This rewrite lets those Adds read ``x``: one kernel fewer per layer, and the
residual exact.

Only ``model.int8.ort.onnx`` gets it; TensorRT's graph keeps its Q/DQ placement, which TensorRT fuses.
"""

from __future__ import annotations

import onnx

from .graph_index import GraphIndex, live_nodes

#: Float producers whose round trips this rewrite removes: their outputs feed no integer kernel but
#: through the QuantizeLinear that stays for the projections.
FLOAT_PRODUCERS = ("LayerNormalization",)


def read_float_residuals(model: onnx.ModelProto) -> int:
    """Rewires, in place, every residual ``Add`` of ``model`` that reads
    ``DequantizeLinear(QuantizeLinear(x))`` of a LayerNorm output ``x`` to read ``x``, and returns how
    many Adds it rewired. The round trip qualifies when every reader of its DequantizeLinear is such an
    Add with a float other operand (not a DequantizeLinear output, which ORT could fuse into an integer
    Add); the round trip's nodes left without readers go."""
    graph = model.graph
    index = GraphIndex(graph)
    producers, readers, graph_outputs = index.producers, index.readers, index.outputs

    rewired = 0
    for dequantize in graph.node:
        if dequantize.op_type != "DequantizeLinear" or dequantize.output[0] in graph_outputs:
            continue
        quantize = index.producer(dequantize.input[0], "QuantizeLinear")
        if quantize is None or list(quantize.input[1:]) != list(dequantize.input[1:]):
            continue
        source = quantize.input[0]
        if producers.get(source) is None or producers[source].op_type not in FLOAT_PRODUCERS:
            continue
        adds = readers.get(dequantize.output[0], [])
        if not adds or any(
            add.op_type != "Add" or any(index.producer(x, "DequantizeLinear") for x in add.input if x != dequantize.output[0])
            for add in adds
        ):
            continue
        for add in adds:
            add.input[:] = [source if x == dequantize.output[0] else x for x in add.input]
            rewired += 1
    if rewired:
        # The round trips nothing reads now go: each DequantizeLinear, and its QuantizeLinear where it
        # was a dedicated pair's.
        nodes = live_nodes(list(graph.node), graph_outputs)
        del graph.node[:]
        graph.node.extend(nodes)
    return rewired
