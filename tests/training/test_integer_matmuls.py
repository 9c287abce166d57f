"""training/export/integer_matmuls.py: Q/DQ weight MatMuls and their bias Adds written as ONNX Runtime's
MatMulIntegerToFloat, checked against the Q/DQ graph run op by op (ONNX Runtime with every optimisation
off computes the DequantizeLinear, MatMul and Add as written) on fresh random graphs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from training.export.integer_matmuls import INTEGER_MATMUL, fold_bias_into_integer_matmuls

ort = pytest.importorskip("onnxruntime")
helper, numpy_helper = onnx.helper, onnx.numpy_helper


def _linear_graph(rng, shape, columns, per_channel, bias_first=False, bias_dims=None, extra_reader=False,
                  matmul_is_output=False):
    """x -> QuantizeLinear (uint8) -> DequantizeLinear -> MatMul with DequantizeLinear(int8 weight) -> Add
    bias -> y (and a Relu of the MatMul's output, or the MatMul's output itself, as further outputs)."""
    k = shape[-1]
    scale_shape = (columns,) if per_channel else ()
    initializers = [
        numpy_helper.from_array(np.float32(rng.uniform(0.01, 0.05)), "x_scale"),
        numpy_helper.from_array(np.uint8(rng.integers(100, 156)), "x_zero"),
        numpy_helper.from_array(rng.integers(-64, 64, (k, columns), dtype=np.int8), "w_q"),
        numpy_helper.from_array(rng.uniform(0.005, 0.02, scale_shape).astype(np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(scale_shape, np.int8), "w_zero"),
        numpy_helper.from_array(rng.standard_normal(bias_dims or (columns,)).astype(np.float32), "bias"),
    ]
    add_inputs = ["bias", "mm"] if bias_first else ["mm", "bias"]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"], name="q"),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"], name="dq_x"),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], name="dq_w", axis=1),
        helper.make_node("MatMul", ["x_dq", "w"], ["mm"], name="matmul"),
        helper.make_node("Add", add_inputs, ["y"], name="add"),
    ]
    out_shape = ["batch", *shape[1:-1], columns]
    outputs = [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, out_shape)]
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["mm"], ["r"], name="relu"))
        outputs.append(helper.make_tensor_value_info("r", onnx.TensorProto.FLOAT, out_shape))
    if matmul_is_output:
        outputs.append(helper.make_tensor_value_info("mm", onnx.TensorProto.FLOAT, out_shape))
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", *shape[1:]])
    return helper.make_model(helper.make_graph(nodes, "linear", [x], outputs, initializers),
                             opset_imports=[helper.make_opsetid("", 18)])


def _run(model: onnx.ModelProto, x: np.ndarray, optimized: bool) -> list[np.ndarray]:
    options = ort.SessionOptions()
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


@pytest.mark.parametrize("shape,columns", [((1, 7, 16), 24), ((3, 5, 48), 8), ((2, 32), 40)])
@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("bias_first", [False, True])
def test_folded_linear_matches_the_qdq_graph_op_by_op(shape, columns, per_channel, bias_first):
    rng = np.random.default_rng()
    model = _linear_graph(rng, shape, columns, per_channel, bias_first)
    x = rng.standard_normal(shape).astype(np.float32) * 2
    expected = _run(model, x, optimized=False)[0]

    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    assert fold_bias_into_integer_matmuls(folded) == 1
    onnx.checker.check_model(folded, full_check=True)
    ops = [n.op_type for n in folded.graph.node]
    assert ops == ["QuantizeLinear", INTEGER_MATMUL], ops  # both DequantizeLinear nodes, the MatMul and the Add gone
    fused = folded.graph.node[1]
    assert fused.domain == "com.microsoft" and fused.input[0] == "x_q" and fused.input[1] == "w_q"
    assert fused.input[6] == "bias" and fused.output[0] == "y"
    for optimized in (False, True):
        np.testing.assert_allclose(_run(folded, x, optimized)[0], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["bias_2d", "matmul_read_twice", "matmul_is_output", "float_weight",
                                  "activation_bias", "per_row_activation_scale"])
def test_leaves_what_the_op_cannot_carry(case):
    rng = np.random.default_rng()
    model = _linear_graph(rng, (1, 6, 16), 12, True, bias_dims=(1, 12) if case == "bias_2d" else None,
                          extra_reader=case == "matmul_read_twice", matmul_is_output=case == "matmul_is_output")
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    if case == "float_weight":  # the weight a float initializer, not behind a DequantizeLinear
        w = numpy_helper.to_array(initializers["w_q"]).astype(np.float32) * 0.01
        graph.initializer.append(numpy_helper.from_array(w, "w_float"))
        next(n for n in graph.node if n.op_type == "MatMul").input[1] = "w_float"
    elif case == "activation_bias":  # the Add's other operand an activation
        next(n for n in graph.node if n.op_type == "Add").input[1] = "x"
    elif case == "per_row_activation_scale":
        initializers["x_scale"].CopyFrom(numpy_helper.from_array(np.full(16, 0.02, np.float32), "x_scale"))
        initializers["x_zero"].CopyFrom(numpy_helper.from_array(np.full(16, 128, np.uint8), "x_zero"))
        for node in graph.node:
            if node.name in ("q", "dq_x"):
                node.attribute.append(helper.make_attribute("axis", 2))
    before = model.SerializeToString()
    assert fold_bias_into_integer_matmuls(model) == 0
    assert model.SerializeToString() == before


def test_a_dequantized_activation_shared_with_another_reader_stays_for_it():
    """Two linears read one DequantizeLinear of x: both fold, and the DequantizeLinear goes only once
    nothing reads it; a third reader (a Relu) keeps it."""
    rng = np.random.default_rng()
    model = _linear_graph(rng, (1, 5, 16), 8, True)
    graph = model.graph
    graph.node.extend([
        helper.make_node("MatMul", ["x_dq", "w"], ["mm2"], name="matmul2"),
        helper.make_node("Add", ["mm2", "bias"], ["y2"], name="add2"),
        helper.make_node("Relu", ["x_dq"], ["r"], name="relu"),
    ])
    graph.output.extend([helper.make_tensor_value_info("y2", onnx.TensorProto.FLOAT, ["batch", 5, 8]),
                         helper.make_tensor_value_info("r", onnx.TensorProto.FLOAT, ["batch", 5, 16])])
    x = rng.standard_normal((1, 5, 16)).astype(np.float32)
    expected = _run(model, x, optimized=False)
    assert fold_bias_into_integer_matmuls(model) == 2
    assert [n.op_type for n in model.graph.node].count("DequantizeLinear") == 1  # x's, for the Relu
    for got, want in zip(_run(model, x, optimized=True), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
