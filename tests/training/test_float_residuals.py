"""training/export/float_residuals.py: residual Adds of ONNX Runtime's int8 graph read the LayerNorm output
itself instead of its Q/DQ round trip; checked on fresh random post-LayerNorm blocks against numpy."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from training.export.float_residuals import read_float_residuals
from training.export.integer_matmuls import INTEGER_MATMUL, MICROSOFT_DOMAIN

ort = pytest.importorskip("onnxruntime")
helper, numpy_helper = onnx.helper, onnx.numpy_helper


def _post_layernorm_block(rng, tokens: int, width: int, producer: str = "LayerNormalization",
                          other_dequantized: bool = False, extra_reader: str | None = None) -> onnx.ModelProto:
    """x -> ``producer`` (LayerNorm) -> h; h quantized for a MatMulIntegerToFloat (its own Q) and, as a
    dedicated pair would, through another Q/DQ round trip into the residual Add: y = h + linear(h)."""
    scale, zero = np.float32(rng.uniform(0.02, 0.05)), np.uint8(rng.integers(100, 156))
    initializers = [numpy_helper.from_array(v, n) for n, v in [
        ("gamma", rng.uniform(0.5, 1.5, width).astype(np.float32)), ("beta", rng.standard_normal(width).astype(np.float32)),
        ("h_scale", scale), ("h_zero", zero), ("w", rng.integers(-64, 64, (width, width), dtype=np.int8)),
        ("w_scale", np.float32(0.002)), ("bias", rng.standard_normal(width).astype(np.float32))]]
    norm = (helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["h"], axis=-1) if producer == "LayerNormalization"
            else helper.make_node("Relu", ["x"], ["h"]))
    linear_in = "linear_round_trip" if other_dequantized else "linear"
    nodes = [
        norm,
        helper.make_node("QuantizeLinear", ["h", "h_scale", "h_zero"], ["h_q_matmul"]),
        helper.make_node(INTEGER_MATMUL, ["h_q_matmul", "w", "h_scale", "w_scale", "h_zero", "", "bias"], ["linear"],
                         domain=MICROSOFT_DOMAIN),
        helper.make_node("QuantizeLinear", ["h", "h_scale", "h_zero"], ["h_q_residual"]),
        helper.make_node("DequantizeLinear", ["h_q_residual", "h_scale", "h_zero"], ["h_round_trip"]),
        helper.make_node("Add", ["h_round_trip", linear_in], ["y"]),
    ]
    if other_dequantized:  # the other operand quantized too: an integer Add's pattern
        nodes[-1:-1] = [helper.make_node("QuantizeLinear", ["linear", "h_scale", "h_zero"], ["linear_q"]),
                        helper.make_node("DequantizeLinear", ["linear_q", "h_scale", "h_zero"], ["linear_round_trip"])]
    outputs = [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1, tokens, width]) for name in ("y", "linear")]
    if extra_reader:
        nodes.append(helper.make_node(extra_reader, ["h_round_trip"], ["r"]))
        outputs.append(helper.make_tensor_value_info("r", onnx.TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, tokens, width])],
                              outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(MICROSOFT_DOMAIN, 1)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})


@pytest.mark.parametrize("tokens,width", [(5, 16), (33, 48)])
def test_the_residual_reads_the_layernorm_output_exactly(tokens, width):
    rng = np.random.default_rng()
    model = _post_layernorm_block(rng, tokens, width)
    x = rng.standard_normal((1, tokens, width)).astype(np.float32) * 3
    before = _run(model, x)[0]
    assert read_float_residuals(model) == 1
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") == 1 and "DequantizeLinear" not in ops, ops  # the projection's Q stays
    after, linear = _run(model, x)
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    h = (x - mean) / np.sqrt(var + 1e-5) * init["gamma"] + init["beta"]
    # The residual is now the LayerNorm output itself; before, it was that output on the uint8 grid.
    np.testing.assert_allclose(after - linear, h, atol=1e-4)
    scale, zero = float(init["h_scale"]), int(init["h_zero"])
    round_trip = (np.clip(np.round(h / scale) + zero, 0, 255) - zero) * scale
    np.testing.assert_allclose(before - linear, round_trip, atol=scale * 1.01)  # a grid step at a rounding tie
    assert np.abs(before - linear - h).max() > 1e-3


@pytest.mark.parametrize("case", ["other_producer", "other_operand_dequantized", "read_by_a_matmul", "read_by_a_relu"])
def test_leaves_round_trips_an_integer_kernel_may_take(case):
    rng = np.random.default_rng()
    model = _post_layernorm_block(
        rng, 4, 8, producer="Relu" if case == "other_producer" else "LayerNormalization",
        other_dequantized=case == "other_operand_dequantized",
        extra_reader={"read_by_a_matmul": "Identity", "read_by_a_relu": "Relu"}.get(case))
    before = model.SerializeToString()
    assert read_float_residuals(model) == 0
    assert model.SerializeToString() == before
