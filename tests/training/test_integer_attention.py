"""training/export/integer_attention.py: self-attentions over MatMulIntegerToFloat projections written as
ONNX Runtime's QAttention, checked against the graph as the exports write it, run op by op (ONNX Runtime
with every optimisation off), on fresh random graphs in the three forms the study models export: timm's
packed q / k / v projection, BERT's three projections under the SDPA lowering, and fusionrt's attention
op with its key mask and its zeroing of rows without any key."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from training.export.integer_attention import INTEGER_ATTENTION, fuse_integer_attention
from training.export.integer_matmuls import INTEGER_MATMUL, MICROSOFT_DOMAIN

ort = pytest.importorskip("onnxruntime")
helper, numpy_helper = onnx.helper, onnx.numpy_helper
LOWEST = float(np.finfo(np.float32).min)


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attributes) -> str:
        domain = MICROSOFT_DOMAIN if op == INTEGER_MATMUL else ""
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, domain=domain, **attributes))
        return output


def _attention_graph(rng, batch: int, tokens: int, heads: int, head_dim: int, form: str, masked: bool,
                     unbind: str = "slice", per_column: bool = True) -> onnx.ModelProto:
    """x (float) -> self-attention -> y, written as ``form``: "packed" (timm: one (width, 3 width)
    projection, reshaped, transposed and unbound, under the SDPA lowering), "bert" (three projections of
    one LayerNorm output, each through its own QuantizeLinear, under the SDPA lowering) or "fusionrt"
    (three projections, the scale after the product, rows without a key zeroed)."""
    width = heads * head_dim
    b = _Builder()
    x_scale, x_zero = b.constant("x_scale", np.float32(rng.uniform(0.02, 0.05))), b.constant("x_zero", np.uint8(rng.integers(100, 156)))
    root = np.sqrt(np.float32(head_dim) ** -0.5).astype(np.float32)

    def projection(name: str, columns: int, quantized: str) -> str:
        scale_shape = (columns,) if per_column else ()
        return b.node(INTEGER_MATMUL, [
            quantized, b.constant(f"{name}_w", rng.integers(-64, 64, (width, columns), dtype=np.int8)), x_scale,
            b.constant(f"{name}_scale", rng.uniform(0.001, 0.004, scale_shape).astype(np.float32)), x_zero,
            b.constant(f"{name}_zero", np.zeros(scale_shape, np.int8)),
            b.constant(f"{name}_bias", rng.standard_normal(columns).astype(np.float32) * 0.1)], f"{name}_out")

    def heads_of(name: str, quantized: str, perm: list[int]) -> str:
        shape = b.constant(f"{name}_shape", np.array([-1, tokens, heads, head_dim], np.int64))
        return b.node("Transpose", [b.node("Reshape", [projection(name, width, quantized), shape], f"{name}_4d")],
                      f"{name}_heads", perm=perm)

    if form == "packed":
        quantized = b.node("QuantizeLinear", ["x", x_scale, x_zero], "x_q")
        shape = b.constant("qkv_shape", np.array([-1, tokens, 3, heads, head_dim], np.int64))
        packed = b.node("Transpose", [b.node("Reshape", [projection("qkv", 3 * width, quantized), shape], "qkv_5d")],
                        "qkv_heads", perm=[2, 0, 3, 1, 4])
        axis0 = b.constant("axis0", np.array([0], np.int64))
        if unbind == "slice":
            parts = [b.node("Slice", [packed, b.constant(f"start{i}", np.array([i], np.int64)),
                                      b.constant(f"end{i}", np.array([i + 1], np.int64)), axis0], f"part{i}")
                     for i in range(3)]
        else:
            b.nodes.append(helper.make_node("Split", [packed, b.constant("sizes", np.ones(3, np.int64))],
                                            ["part0", "part1", "part2"], axis=0))
            parts = ["part0", "part1", "part2"]
        q, k, v = (b.node("Squeeze", [part, axis0], f"{name}_heads") for part, name in zip(parts, "qkv"))
        k_t = b.node("Transpose", [k], "k_t", perm=[0, 1, 3, 2])
    else:
        quantize = (lambda name: b.node("QuantizeLinear", ["x", x_scale, x_zero], f"x_q_{name}"))
        q = heads_of("q", quantize("q"), [0, 2, 1, 3])
        k_t = heads_of("k", quantize("k"), [0, 2, 3, 1])
        v = heads_of("v", quantize("v"), [0, 2, 1, 3])
    if form == "fusionrt":
        scores = b.node("Mul", [b.node("MatMul", [q, k_t], "qk"), b.constant("factor", np.float32(head_dim ** -0.5))], "scores")
    else:
        r = b.constant("root_scale", root)
        scores = b.node("MatMul", [b.node("Mul", [q, r], "q_scaled"), b.node("Mul", [k_t, r], "k_t_scaled")], "scores")
    inputs = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", tokens, width])]
    if masked:
        inputs.append(helper.make_tensor_value_info("mask", onnx.TensorProto.BOOL, ["batch", tokens]))
        attended = b.node("Unsqueeze", ["mask", b.constant("axes12", np.array([1, 2], np.int64))], "attended")
        bias = b.node("Where", [attended, b.constant("zero", np.float32(0)), b.constant("lowest", np.float32(LOWEST))], "mask_bias")
        scores = b.node("Add", [scores, bias], "masked_scores")
    out = b.node("MatMul", [b.node("Softmax", [scores], "weights", axis=-1), v], "attended_values")
    if form == "fusionrt" and masked:
        has_key = b.node("ReduceMax", [b.node("Cast", [attended], "attended_float", to=onnx.TensorProto.FLOAT),
                                       b.constant("last", np.array([-1], np.int64))], "has_key_count", keepdims=1)
        condition = b.node("Greater", [has_key, b.constant("zero_count", np.float32(0))], "has_key")
        out = b.node("Where", [condition, out, "zero"], "zeroed")
    merged = b.node("Transpose", [out], "merged_heads", perm=[0, 2, 1, 3])
    b.node("Reshape", [merged, b.constant("out_shape", np.array([-1, tokens, width], np.int64))], "y")
    graph = helper.make_graph(b.nodes, form, inputs,
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", tokens, width])],
                              b.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(MICROSOFT_DOMAIN, 1)])


def _feeds(rng, model: onnx.ModelProto, batch: int, tokens: int, width: int, empty_row: bool = False) -> dict:
    feeds = {"x": rng.standard_normal((batch, tokens, width)).astype(np.float32) * 2}
    if any(i.name == "mask" for i in model.graph.input):
        lengths = rng.integers(1, tokens + 1, batch)
        feeds["mask"] = np.arange(tokens)[None, :] < lengths[:, None]
        if empty_row:
            feeds["mask"][-1] = False
    return feeds


def _run(model: onnx.ModelProto, feeds: dict, optimized: bool) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _fused(model: onnx.ModelProto, expected_count: int = 1) -> onnx.ModelProto:
    fused = onnx.ModelProto()
    fused.CopyFrom(model)
    assert fuse_integer_attention(fused) == expected_count
    onnx.checker.check_model(fused, full_check=True)
    return fused


@pytest.mark.parametrize("batch,tokens,heads,head_dim", [(1, 7, 2, 8), (3, 12, 4, 16), (2, 33, 3, 32)])
@pytest.mark.parametrize("form,masked,unbind", [
    ("packed", False, "slice"), ("packed", False, "split"), ("bert", False, None), ("bert", True, None),
    ("fusionrt", True, None), ("fusionrt", False, None)])
def test_fused_attention_matches_the_graph_op_by_op(batch, tokens, heads, head_dim, form, masked, unbind):
    rng = np.random.default_rng()
    model = _attention_graph(rng, batch, tokens, heads, head_dim, form, masked, unbind)
    feeds = _feeds(rng, model, batch, tokens, heads * head_dim)
    expected = _run(model, feeds, optimized=False)

    fused = _fused(model)
    ops = [n.op_type for n in fused.graph.node]
    assert ops.count(INTEGER_ATTENTION) == 1 and INTEGER_MATMUL not in ops, ops
    assert not {"Softmax", "MatMul", "Transpose", "Slice", "Split"} & set(ops), ops
    assert ops.count("Squeeze") == (form == "fusionrt" and masked), ops  # the row-zeroing condition's, only
    # One quantization of x for q, k and v, where the graph had one per projection.
    assert ops.count("QuantizeLinear") == 1, ops
    for optimized in (False, True):
        np.testing.assert_allclose(_run(fused, feeds, optimized), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("per_column", [True, False])
def test_separate_projections_join_into_one_weight_with_their_scales(per_column):
    """BERT's three projections: their weights, biases and scales concatenated in q, k, v order (per
    tensor scales that differ become per column), every old initializer gone."""
    rng = np.random.default_rng()
    model = _attention_graph(rng, 2, 9, 2, 8, "bert", masked=True, per_column=per_column)
    feeds = _feeds(rng, model, 2, 9, 16)
    expected = _run(model, feeds, optimized=False)
    fused = _fused(model)
    initializers = {i.name: numpy_helper.to_array(i) for i in fused.graph.initializer}
    before = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    attention = next(n for n in fused.graph.node if n.op_type == INTEGER_ATTENTION)
    np.testing.assert_array_equal(initializers[attention.input[1]],
                                  np.concatenate([before[f"{p}_w"] for p in "qkv"], axis=1))
    np.testing.assert_array_equal(initializers[attention.input[2]], np.concatenate([before[f"{p}_bias"] for p in "qkv"]))
    scales = [np.broadcast_to(before[f"{p}_scale"], (16,)) for p in "qkv"]
    np.testing.assert_array_equal(initializers[attention.input[4]], np.concatenate(scales))
    assert not {f"{p}_w" for p in "qkv"} & set(initializers)
    np.testing.assert_allclose(_run(fused, feeds, True), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_rows_without_any_key_stay_zeros():
    rng = np.random.default_rng()
    model = _attention_graph(rng, 3, 6, 2, 8, "fusionrt", masked=True)
    feeds = _feeds(rng, model, 3, 6, 16, empty_row=True)
    got = _run(_fused(model), feeds, optimized=True)
    np.testing.assert_array_equal(got[-1], 0.0)
    np.testing.assert_allclose(got, _run(model, feeds, optimized=False), rtol=1e-4, atol=1e-4 * np.abs(got).max())


def test_attentions_sharing_one_mask_share_its_cast():
    """Two layers (the second reading the first's output through a QuantizeLinear) fuse to two ops
    reading one int32 copy of the mask, in an order ONNX Runtime accepts."""
    rng = np.random.default_rng()
    first = _attention_graph(rng, 2, 5, 2, 4, "bert", masked=True)
    second = _attention_graph(rng, 2, 5, 2, 4, "bert", masked=True)
    rename = {name: f"l2_{name}" for node in second.graph.node for name in node.output}
    rename.update({i.name: f"l2_{i.name}" for i in second.graph.initializer})
    rename.update({"x": "y", "mask": "mask"})
    for node in second.graph.node:
        node.name = f"l2_{node.name}"
        node.input[:] = [rename.get(name, name) for name in node.input]
        node.output[:] = [rename[name] for name in node.output]
    for init in second.graph.initializer:
        init.name = rename[init.name]
    first.graph.node.extend(second.graph.node)
    first.graph.initializer.extend(second.graph.initializer)
    first.graph.output[0].name = "l2_y"
    feeds = _feeds(rng, first, 2, 5, 8)
    expected = _run(first, feeds, optimized=False)
    fused = _fused(first, expected_count=2)
    ops = [n.op_type for n in fused.graph.node]
    assert ops.count(INTEGER_ATTENTION) == 2 and ops.count("Cast") == 1, ops
    np.testing.assert_allclose(_run(fused, feeds, True), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def _cross_attention(model: onnx.ModelProto) -> None:
    """k and v read another tensor (the keys' own QuantizeLinear of a second input)."""
    graph = model.graph
    graph.input.append(helper.make_tensor_value_info("memory", onnx.TensorProto.FLOAT, ["batch", 9, 16]))
    next(n for n in graph.node if n.output[0] == "x_q_k").input[0] = "memory"


def _unknown_mask(model: onnx.ModelProto) -> None:
    """A mask bias of -1 (a soft bias, not a mask): QAttention's raw mask cannot carry it."""
    next(i for i in model.graph.initializer if i.name == "lowest").CopyFrom(numpy_helper.from_array(np.float32(-1), "lowest"))


def _float_weight(model: onnx.ModelProto) -> None:
    weight = next(i for i in model.graph.initializer if i.name == "v_w")
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight).astype(np.uint8), "v_w"))


def _other_scale(model: onnx.ModelProto) -> None:
    """v's activation quantized with another scale than q's and k's."""
    model.graph.initializer.append(numpy_helper.from_array(np.float32(0.5), "other_scale"))
    next(n for n in model.graph.node if n.output[0] == "x_q_v").input[1] = "other_scale"
    next(n for n in model.graph.node if n.output[0] == "v_out").input[2] = "other_scale"


def _softmax_over_queries(model: onnx.ModelProto) -> None:
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    softmax.attribute[0].CopyFrom(helper.make_attribute("axis", 2))


@pytest.mark.parametrize("change", [_cross_attention, _unknown_mask, _float_weight, _other_scale, _softmax_over_queries])
def test_leaves_what_the_op_cannot_carry(change):
    rng = np.random.default_rng()
    model = _attention_graph(rng, 2, 9, 2, 8, "bert", masked=True)
    change(model)
    before = model.SerializeToString()
    assert fuse_integer_attention(model) == 0
    assert model.SerializeToString() == before


def test_leaves_a_zeroing_it_cannot_read_as_fusionrts_empty_row_condition():
    """fusionrt's form with the Where after the products reading another condition (per query, not per
    sample): the op's (batch, 1, 1) condition could not carry it, so nothing is fused."""
    rng = np.random.default_rng()
    model = _attention_graph(rng, 2, 6, 2, 8, "fusionrt", masked=True)
    reduce = next(n for n in model.graph.node if n.op_type == "ReduceMax")
    model.graph.initializer.append(numpy_helper.from_array(np.array([2], np.int64), "other_axis"))
    reduce.input[1] = "other_axis"
    before = model.SerializeToString()
    assert fuse_integer_attention(model) == 0
    assert model.SerializeToString() == before


@pytest.mark.parametrize("form,masked", [("packed", False), ("bert", True)])
def test_the_profile_counts_the_fused_ops_gemms_as_the_graphs_own(tmp_path, form, masked):
    """bench/ort_profile.py reads QAttention as the projection (packed: one (width x 3 width) GEMM) and
    the two products per head: the same work the unfused graph's MatMulIntegerToFloat and MatMuls do."""
    ort_profile = pytest.importorskip("bench.ort_profile")
    rng = np.random.default_rng()
    batch, tokens, heads, head_dim = 1, 11, 3, 8
    model = _attention_graph(rng, batch, tokens, heads, head_dim, form, masked)
    paths = {}
    for name, graph in (("written", model), ("fused", _fused(model))):
        paths[name] = tmp_path / f"{name}.onnx"
        onnx.save(graph, str(paths[name]))
    feeds = _feeds(rng, model, batch, tokens, heads * head_dim)
    written, fused = (ort_profile.model_gemms(paths[name], feeds) for name in ("written", "fused"))
    assert sum(g.ops for g in fused) == sum(g.ops for g in written) > 0
    activation = sorted((g.batch, g.m, g.k, g.n) for g in fused if g.kind == "activation")
    assert activation == sorted([(heads, tokens, head_dim, tokens), (heads, tokens, tokens, head_dim)])
    assert [(g.m, g.k, g.n) for g in fused if g.kind == "weight"] == [(tokens, heads * head_dim, 3 * heads * head_dim)]
