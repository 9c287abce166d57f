"""ONNX Runtime's int8 graph: each self-attention written as the one ``com.microsoft.QAttention`` op.

After :mod:`.integer_matmuls`, a self-attention of the int8 graph is a ``MatMulIntegerToFloat`` per
projection (one packed q / k / v projection in timm's ViT, three in BERT and fusionrt's fusion blocks),
then the head layout (Reshape, Transpose, Slice / Squeeze), the two float products with softmax between
them, and the output's Transpose and Reshape back. ORT runs each of those as a kernel of its own: the
layout copies alone were ~5 % of a paper-size ViT int8 graph in its profile. ORT's CPU ``QAttention``
does all of it in one kernel: the q / k / v projection as one batch of int8 GEMMs writing each head
straight to its place, the products per head, and the output in (batch, sequence, width) layout.
Paper-size intermediate and early ViT int8 graphs ran 3-9 % faster so (A/B, in one process), with
identical outputs: the kernel runs the same MLAS GEMMs on the same int8 operands.

The rewrite matches the attention as this project's exports write it: the products scaled by constants
(before, as the SDPA lowering scales q and kᵀ, or after, as fusionrt's op does), an optional key mask
added as ``Where(mask[:, None, None, :], 0, lowest)`` (a raw (batch, keys) mask for ``QAttention``,
its filter value the same lowest float), and fusionrt's zeroing of rows without any key kept as it
is. Anything else, cross-attention included, stays as it is.

Only ``model.int8.ort.onnx`` gets it: TensorRT reads Q/DQ graphs, not com.microsoft ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from .graph_index import STANDARD_DOMAINS, GraphIndex, attribute, live_nodes, topological
from .integer_matmuls import INTEGER_MATMUL, MICROSOFT_DOMAIN

INTEGER_ATTENTION = "QAttention"


@dataclass(frozen=True)
class _Projection:
    """Where q, k or v comes from: ``part`` of the ``parts`` of the output of ``matmul`` (a
    ``MatMulIntegerToFloat``), split into ``heads`` heads of ``head_size``."""

    matmul: onnx.NodeProto
    part: int
    parts: int
    heads: int
    head_size: int


def _scaled(g: GraphIndex, tensor: str) -> tuple[str, float]:
    """``tensor`` as (its unscaled source, the constant factor) when a Mul by a scalar made it."""
    mul = g.producer(tensor, "Mul")
    if mul is not None:
        for this, other in ((mul.input[0], mul.input[1]), (mul.input[1], mul.input[0])):
            factor = g.scalar(other)
            if factor is not None:
                return this, factor
    return tensor, 1.0


def _projection(g: GraphIndex, tensor: str, transposed: bool) -> _Projection | None:
    """The projection ``tensor`` is a head-major view of: (batch, heads, sequence, head_size), or with
    its last two axes swapped when ``transposed`` (kᵀ)."""
    node = g.producers.get(tensor)
    if node is not None and node.op_type == "Transpose":
        perm = list(attribute(node, "perm", []))
        if transposed and perm == [0, 1, 3, 2]:  # kᵀ of a head-major k
            return _projection(g, node.input[0], transposed=False)
        reshape = g.producer(node.input[0], "Reshape")
        if perm != ([0, 2, 3, 1] if transposed else [0, 2, 1, 3]) or reshape is None:
            return None
        shape = g.constant(reshape.input[1])
        if shape is None or len(shape) != 4 or min(shape[2:]) < 1:
            return None
        matmul = g.producer(reshape.input[0], INTEGER_MATMUL, (MICROSOFT_DOMAIN,))
        return None if matmul is None else _Projection(matmul, 0, 1, int(shape[2]), int(shape[3]))
    if node is not None and node.op_type == "Squeeze" and not transposed:  # unbound from a packed projection
        axes = g.constant(node.input[1]) if len(node.input) > 1 else attribute(node, "axes")
        part = _packed_part(g, node.input[0])
        if axes is None or list(np.ravel(axes)) != [0] or part is None:
            return None
        index, transpose = part
        reshape = g.producer(transpose.input[0], "Reshape")
        shape = None if reshape is None else g.constant(reshape.input[1])
        if shape is None or len(shape) != 5 or shape[2] != 3 or min(shape[3:]) < 1:
            return None
        matmul = g.producer(reshape.input[0], INTEGER_MATMUL, (MICROSOFT_DOMAIN,))
        return None if matmul is None else _Projection(matmul, index, 3, int(shape[3]), int(shape[4]))
    return None


def _packed_part(g: GraphIndex, tensor: str) -> tuple[int, onnx.NodeProto] | None:
    """(index, the Transpose) when ``tensor`` is q, k or v taken along axis 0 of
    a (3, batch, heads, sequence, head_size) Transpose, as an exporter writes ``qkv.unbind(0)``."""
    node = g.producers.get(tensor)
    if node is None:
        return None
    if node.op_type == "Slice":
        starts, ends = g.constant(node.input[1]), g.constant(node.input[2])
        axes = g.constant(node.input[3]) if len(node.input) > 3 and node.input[3] else np.array([0])
        steps = g.constant(node.input[4]) if len(node.input) > 4 and node.input[4] else np.array([1])
        if any(v is None or v.size != 1 for v in (starts, ends, axes, steps)):
            return None
        index, end, axis, step = (int(v.item()) for v in (starts, ends, axes, steps))
        if axis != 0 or step != 1 or end != index + 1 or not 0 <= index < 3:
            return None
    elif node.op_type == "Split":
        if attribute(node, "axis", 0) != 0 or len(node.output) != 3:
            return None
        sizes = g.constant(node.input[1]) if len(node.input) > 1 and node.input[1] else np.ones(3)
        if list(np.ravel(sizes)) != [1, 1, 1]:
            return None
        index = list(node.output).index(tensor)
    else:
        return None
    transpose = g.producer(node.input[0], "Transpose")
    if transpose is None or list(attribute(transpose, "perm", [])) != [2, 0, 3, 1, 4]:
        return None
    return index, transpose


def _key_mask(g: GraphIndex, tensor: str) -> tuple[str, float] | None:
    """(the (batch, keys) bool mask, the masked keys' value) when ``tensor`` is
    ``Where(Unsqueeze(mask, [1, 2]), 0, lowest)``."""
    where = g.producer(tensor, "Where")
    unsqueeze = None if where is None else g.producer(where.input[0], "Unsqueeze")
    if unsqueeze is None or g.scalar(where.input[1]) != 0.0:
        return None
    masked = g.scalar(where.input[2])
    axes = g.constant(unsqueeze.input[1]) if len(unsqueeze.input) > 1 else attribute(unsqueeze, "axes")
    if masked is None or masked > -1e4 or axes is None or list(np.ravel(axes)) != [1, 2]:
        return None
    return unsqueeze.input[0], masked


def _has_any_key(g: GraphIndex, tensor: str, mask: str) -> bool:
    """Whether ``tensor`` is fusionrt's (batch, 1, 1, 1) "this sample has a key" condition on ``mask``:
    ``Greater(ReduceMax(Cast(Unsqueeze(mask, [1, 2])), -1, keepdims), 0)``."""
    greater = g.producer(tensor, "Greater")
    reduce = None if greater is None or g.scalar(greater.input[1]) != 0.0 else g.producer(greater.input[0], "ReduceMax")
    axes = None if reduce is None or len(reduce.input) < 2 else g.constant(reduce.input[1])
    if axes is None or list(np.ravel(axes)) not in ([-1], [3]) or attribute(reduce, "keepdims", 1) != 1:
        return False
    cast = g.producer(reduce.input[0], "Cast")
    unsqueeze = None if cast is None else g.producer(cast.input[0], "Unsqueeze")
    return unsqueeze is not None and unsqueeze.input[0] == mask


@dataclass(frozen=True)
class _Match:
    projections: tuple[_Projection, _Projection, _Projection]  # q, k, v
    scale: float
    mask: str | None
    mask_value: float
    has_key: tuple[str, str] | None  # fusionrt's Where(has_key, out, 0): (has_key, zero)
    output: str  # the (batch, sequence, width) tensor the attention writes


def _match(g: GraphIndex, softmax: onnx.NodeProto) -> _Match | None:
    """The self-attention around ``softmax``, or None."""
    if attribute(softmax, "axis", -1) not in (-1, 3):
        return None
    scores, mask, mask_value = softmax.input[0], None, 0.0
    add = g.producer(scores, "Add")
    if add is not None:
        for this, other in ((add.input[0], add.input[1]), (add.input[1], add.input[0])):
            found = _key_mask(g, other)
            if found is not None:
                (mask, mask_value), scores = found, this
                break
        else:
            return None
    scores, factor = _scaled(g, scores)
    product = g.producer(scores, "MatMul")
    apply = g.sole_reader(softmax.output[0], "MatMul")
    if product is None or apply is None or apply.input[0] != softmax.output[0]:
        return None
    (q, q_factor), (k, k_factor) = _scaled(g, product.input[0]), _scaled(g, product.input[1])
    projections = (_projection(g, q, False), _projection(g, k, True), _projection(g, apply.input[1], False))
    if any(p is None for p in projections) or not _same_source(g, projections):
        return None
    out, has_key = apply.output[0], None
    where = g.sole_reader(out, "Where")
    if where is not None and where.input[1] == out and g.scalar(where.input[2]) == 0.0:
        if mask is None or not _has_any_key(g, where.input[0], mask):
            return None
        out, has_key = where.output[0], (where.input[0], where.input[2])
    transpose = g.sole_reader(out, "Transpose")
    if transpose is None or list(attribute(transpose, "perm", [])) != [0, 2, 1, 3]:
        return None
    reshape = g.sole_reader(transpose.output[0], "Reshape")
    shape = None if reshape is None else g.constant(reshape.input[1])
    width = projections[0].heads * projections[0].head_size
    if shape is None or len(shape) != 3 or shape[2] not in (width, -1):
        return None
    return _Match(projections, factor * q_factor * k_factor, mask, mask_value, has_key, reshape.output[0])


def _same_source(g: GraphIndex, projections: tuple[_Projection, ...]) -> bool:
    """Whether q, k and v are one packed projection's three parts, or three projections of one
    quantized input, with one head layout that QAttention's (input width, 3 x width) weight can carry."""
    q, k, v = projections
    heads, size = q.heads, q.head_size
    if any((p.heads, p.head_size) != (heads, size) for p in projections):
        return False
    if q.parts == 3:
        return q.matmul is k.matmul is v.matmul and (q.part, k.part, v.part) == (0, 1, 2)
    matmuls = [p.matmul for p in projections]
    if len({id(m) for m in matmuls}) != 3 or any(p.parts != 1 for p in projections):
        return False
    sources = {_quantized_source(g, m) for m in matmuls}
    return len(sources) == 1 and None not in next(iter(sources))


def _quantized_source(g: GraphIndex, matmul: onnx.NodeProto) -> tuple[str, float | None, int | None]:
    """(float tensor, scale, zero point) that ``matmul``'s activation quantizes: with dedicated Q/DQ
    pairs, q, k and v read one tensor through three QuantizeLinear nodes of the same scale."""
    x, scale = matmul.input[0], g.scalar(matmul.input[2])
    zero = g.constant(matmul.input[4]) if len(matmul.input) > 4 and matmul.input[4] else np.zeros(1, np.uint8)
    quantize = g.producer(x, "QuantizeLinear")
    return (x if quantize is None else quantize.input[0], scale, None if zero is None else int(zero.item()))


def _qattention_inputs(g: GraphIndex, match: _Match, new: list[onnx.TensorProto]) -> list[str] | None:
    """QAttention's weight, bias, scales and zero points for ``match`` (new initializers in ``new``)."""
    q = match.projections[0]
    first = q.matmul
    width = q.heads * q.head_size
    x, x_scale, x_zero = first.input[0], first.input[2], first.input[4] if len(first.input) > 4 else ""
    if g.scalar(x_scale) is None:  # QAttention scales its input per tensor
        return None
    matmuls = [first] if q.parts == 3 else [p.matmul for p in match.projections]
    weights = [g.constant(m.input[1]) for m in matmuls]
    if any(w is None or w.dtype != np.int8 or w.ndim != 2 or w.shape[1] != width * q.parts for w in weights):
        return None
    x_zero_value = g.constant(x_zero) if x_zero else None
    if x_zero_value is not None and x_zero_value.dtype != np.uint8:
        return None
    if x_zero == "" and g.initializers.get(x) is not None:
        return None

    def per_column(index: int, default: float | int, dtype: type) -> np.ndarray | None:
        values = []
        for m, w in zip(matmuls, weights):
            name = m.input[index] if len(m.input) > index else ""
            value = np.full(w.shape[1], default, dtype) if not name else g.constant(name)
            if value is None or value.size not in (1, w.shape[1]):
                return None
            values.append(np.broadcast_to(value.astype(dtype), (w.shape[1],)))
        joined = np.concatenate(values)
        return joined[:1].reshape(()) if np.all(joined == joined[0]) else joined

    scale, zero, bias = per_column(3, 1.0, np.float32), per_column(5, 0, np.int8), per_column(6, 0.0, np.float32)
    if scale is None or zero is None or bias is None:
        return None
    if bias.ndim == 0:
        bias = np.full(width * 3, bias, np.float32)
    if len(matmuls) == 1 and len(first.input) > 6 and first.input[6]:
        bias_name = first.input[6]
    else:
        bias_name = f"{first.output[0]}_qkv_bias"
        new.append(numpy_helper.from_array(bias, bias_name))
    if len(matmuls) == 1:
        weight_name = first.input[1]
    else:
        weight_name = f"{first.output[0]}_qkv_weight"
        new.append(numpy_helper.from_array(np.concatenate(weights, axis=1), weight_name))
    scale_name, zero_name = f"{first.output[0]}_qkv_weight_scale", f"{first.output[0]}_qkv_weight_zero_point"
    new += [numpy_helper.from_array(scale, scale_name), numpy_helper.from_array(zero, zero_name)]
    return [x, weight_name, bias_name, x_scale, scale_name, "", x_zero, zero_name]


def fuse_integer_attention(model: onnx.ModelProto) -> int:
    """Rewrites, in place, each self-attention of ``model`` whose projections are
    ``MatMulIntegerToFloat`` nodes as one ``com.microsoft.QAttention`` and returns how many it rewrote.

    The q / k / v weights (three projections' concatenated, or the packed one's as they are) become the
    op's (width, 3 x width) weight; scales and zero points per column where they differ. A key mask
    becomes the op's raw (batch, keys) ``mask_index``; fusionrt's zeroing of rows without any key stays
    after the op. The nodes and initializers nothing reads any more go.
    """
    opset = next((e.version for e in model.opset_import if e.domain in ("", "ai.onnx")), 0)
    if opset < 13:  # Softmax over the last axis alone from opset 13 on
        return 0
    g = GraphIndex(model.graph)
    written: dict[str, list[onnx.NodeProto]] = {}  # the attention's output -> the nodes that now write it
    casts: dict[str, str] = {}  # bool mask -> its int32 copy
    initializers: list[onnx.TensorProto] = []
    for softmax in model.graph.node:
        if softmax.op_type != "Softmax" or softmax.domain not in STANDARD_DOMAINS:
            continue
        match = _match(g, softmax)
        staged: list[onnx.TensorProto] = []
        inputs = None if match is None else _qattention_inputs(g, match, staged)
        if inputs is None:
            continue
        nodes: list[onnx.NodeProto] = []
        if match.mask is not None:
            if match.mask not in casts:
                casts[match.mask] = f"{match.mask}_int32"
                nodes.append(onnx.helper.make_node("Cast", [match.mask], [casts[match.mask]],
                                                   to=onnx.TensorProto.INT32, name=f"{match.mask}_int32"))
            inputs[5] = casts[match.mask]
        q = match.projections[0]
        out = match.output if match.has_key is None else f"{match.output}_all_rows"
        attributes: dict[str, object] = {"num_heads": q.heads, "scale": match.scale}
        if match.mask is not None:
            attributes["mask_filter_value"] = match.mask_value
        nodes.append(onnx.helper.make_node(INTEGER_ATTENTION, inputs, [out], domain=MICROSOFT_DOMAIN,
                                           name=f"{q.matmul.name}_attention", **attributes))
        if match.has_key is not None:  # its (batch, 1, 1, 1) condition, for the (batch, sequence, width) output
            (has_key, zero), axes = match.has_key, f"{match.output}_has_key_axes"
            staged.append(numpy_helper.from_array(np.array([1], np.int64), axes))
            nodes += [onnx.helper.make_node("Squeeze", [has_key, axes], [f"{match.output}_has_key"]),
                      onnx.helper.make_node("Where", [f"{match.output}_has_key", out, zero], [match.output])]
        initializers += staged
        written[match.output] = nodes
    if not written:
        return 0

    graph = model.graph
    nodes = [n for node in graph.node for n in written.get(node.output[0], [node])]
    graph.initializer.extend(initializers)
    available = {value.name for value in graph.input} | {init.name for init in graph.initializer}
    nodes = live_nodes(topological(nodes, available), {value.name for value in graph.output})
    read = {name for node in nodes for name in node.input}
    kept = [init for init in graph.initializer if init.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(entry.domain == MICROSOFT_DOMAIN for entry in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(MICROSOFT_DOMAIN, 1))
    return len(written)
