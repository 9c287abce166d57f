"""ONNX Runtime's int8 graph: each weight MatMul and its bias written as the one op ORT runs them with.

ORT turns a Q/DQ weight MatMul whose output stays float (``DequantizeLinear`` of the quantized
activation and of the int8 weight into a ``MatMul``) into ``com.microsoft.MatMulIntegerToFloat``, but
leaves the bias ``Add`` after it as a kernel of its own: one more pass over every linear layer's
output, 4.4 ms of a paper-size late ViT int8 graph's 51 in ORT's profile here. ``MatMulIntegerToFloat``
takes the bias as an input and adds it while it scales the int32 products (MLAS's scale-bias output
processor), so this rewrite writes the three nodes as that one: that graph ran 4-6 % faster (A/B).
The arithmetic is the op ORT already runs, plus the same float bias add, so the outputs agree with
ORT's own fusion to float rounding.

Only ``model.int8.ort.onnx`` gets it: TensorRT reads Q/DQ graphs, not com.microsoft ops.
"""

from __future__ import annotations

import onnx

from .graph_index import STANDARD_DOMAINS, GraphIndex, live_nodes

#: The contrib op domain and the op that carries the bias.
MICROSOFT_DOMAIN = "com.microsoft"
INTEGER_MATMUL = "MatMulIntegerToFloat"


def _scalar(tensor: onnx.TensorProto | None) -> bool:
    return tensor is not None and len(tensor.dims) == 0


def fold_bias_into_integer_matmuls(model: onnx.ModelProto) -> int:
    """Rewrites, in place, each ``Add(MatMul(DequantizeLinear(x_q), DequantizeLinear(w_q)), bias)`` of
    ``model`` as ``MatMulIntegerToFloat(x_q, w_q, x_scale, w_scale, x_zero, w_zero, bias)`` and
    returns how many it rewrote.

    A MatMul qualifies when its activation is quantized per tensor, its weight is a 2-D int8 initializer
    quantized per tensor or per output column, its output feeds nothing but the Add, and the bias is a
    1-D float initializer of the weight's column count; anything else stays as it is. Nodes left without
    readers (the folded MatMuls and their DequantizeLinears) go.
    """
    graph = model.graph
    index = GraphIndex(graph)
    initializers, readers, graph_outputs = index.initializers, index.readers, index.outputs

    def dequantize(tensor: str) -> onnx.NodeProto | None:
        return index.producer(tensor, "DequantizeLinear")

    # Keyed by output names, which SSA makes unique (node names need not be).
    replaced: dict[str, onnx.NodeProto] = {}  # the Add's output -> the node written in its place
    for matmul in graph.node:
        if matmul.op_type != "MatMul" or matmul.domain not in STANDARD_DOMAINS:
            continue
        activation, weight = dequantize(matmul.input[0]), dequantize(matmul.input[1])
        adds = readers.get(matmul.output[0], [])
        if activation is None or weight is None or len(adds) != 1 or adds[0].op_type != "Add":
            continue
        if matmul.output[0] in graph_outputs or activation.input[0] in initializers:
            continue
        add = adds[0]
        bias = initializers.get(next((x for x in add.input if x != matmul.output[0]), ""))
        w_q = initializers.get(weight.input[0])
        if w_q is None or w_q.data_type != onnx.TensorProto.INT8 or len(w_q.dims) != 2:
            continue
        columns = w_q.dims[1]
        if bias is None or bias.data_type != onnx.TensorProto.FLOAT or list(bias.dims) != [columns]:
            continue
        if not _scalar(initializers.get(activation.input[1])):
            continue  # MatMulIntegerToFloat's a_scale per column of A is not DequantizeLinear's per axis
        w_scale = initializers.get(weight.input[1])
        axis = next((a.i for a in weight.attribute if a.name == "axis"), 1)
        if not (_scalar(w_scale) or (w_scale is not None and list(w_scale.dims) == [columns] and axis in (1, -1))):
            continue
        zero_points = [dq.input[2] if len(dq.input) > 2 else "" for dq in (activation, weight)]
        inputs = [activation.input[0], weight.input[0], activation.input[1], weight.input[1], *zero_points, bias.name]
        fused = onnx.helper.make_node(INTEGER_MATMUL, inputs, list(add.output), name=matmul.name,
                                      domain=MICROSOFT_DOMAIN)
        fused.metadata_props.extend(matmul.metadata_props)  # keeps the module scope the exporter recorded
        replaced[add.output[0]] = fused
    if not replaced:
        return 0

    # The folded MatMuls and their DequantizeLinears: nothing reads them once the fused ops replace the Adds.
    nodes = live_nodes([replaced.get(node.output[0], node) for node in graph.node], graph_outputs)
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(entry.domain == MICROSOFT_DOMAIN for entry in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(MICROSOFT_DOMAIN, 1))
    return len(replaced)
