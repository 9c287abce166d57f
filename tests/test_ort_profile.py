"""bench/ort_profile.py: the GEMM work it counts from a graph's shapes, the int8 reference graph it times
against, and the per-op-type profile, on small graphs whose answers are worked out here by hand."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

ort = pytest.importorskip("onnxruntime")
from bench import ort_profile  # noqa: E402

helper = onnx.helper


def _graph(tmp_path, rng, rows: int, width: int, channels: int, groups: int, quantized_weight: bool):
    """x [1, rows, width] -> weight MatMul (x W, W [width, 2 width], behind a DequantizeLinear when
    ``quantized_weight``) -> activation MatMul (y yᵀ); image [1, channels, 9, 9] -> grouped 3x3 Conv
    (stride 2, pad 1, 2 channels out) -> Gemm with transB on the flattened conv."""
    weight = rng.standard_normal((width, 2 * width)).astype(np.float32)
    initializers = [onnx.numpy_helper.from_array(rng.standard_normal((channels * 2, channels // groups, 3, 3))
                                                 .astype(np.float32), "conv_w"),
                    onnx.numpy_helper.from_array(rng.standard_normal((5, channels * 2 * 25)).astype(np.float32), "fc_w")]
    nodes = []
    if quantized_weight:
        initializers += [onnx.numpy_helper.from_array(np.clip(np.round(weight * 20), -127, 127).astype(np.int8), "w_q"),
                         onnx.numpy_helper.from_array(np.float32(0.05), "w_scale")]
        nodes.append(helper.make_node("DequantizeLinear", ["w_q", "w_scale"], ["w"], name="dq"))
    else:
        initializers.append(onnx.numpy_helper.from_array(weight, "w"))
    nodes += [
        helper.make_node("MatMul", ["x", "w"], ["y"], name="weight_matmul"),
        helper.make_node("Transpose", ["y"], ["yt"], perm=[0, 2, 1], name="t"),
        helper.make_node("MatMul", ["y", "yt"], ["scores"], name="activation_matmul"),
        helper.make_node("Conv", ["image", "conv_w"], ["c"], group=groups, strides=[2, 2], pads=[1, 1, 1, 1],
                         name="conv"),
        helper.make_node("Flatten", ["c"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w"], ["logits"], transB=1, name="gemm"),
    ]
    inputs = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", rows, width]),
              helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["batch", channels, 9, 9])]
    outputs = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in ("scores", "logits")]
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, initializers),
                              opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "g.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("rows,width,channels,groups,quantized_weight",
                         [(7, 16, 4, 1, False), (12, 24, 6, 3, True), (3, 8, 4, 4, False)])
def test_gemm_work_from_shapes_and_reference_runs_it(tmp_path, rows, width, channels, groups, quantized_weight):
    rng = np.random.default_rng(rows)
    path = _graph(tmp_path, rng, rows, width, channels, groups, quantized_weight)
    feeds = ort_profile.graph_feeds(path)
    assert feeds["x"].shape == (1, rows, width) and feeds["image"].shape == (1, channels, 9, 9)
    gemms = {g.kind: g for g in ort_profile.model_gemms(path, feeds)}
    assert len(gemms) == 3  # the Gemm counts as a weight GEMM, beside the MatMul
    weight = [g for g in ort_profile.model_gemms(path, feeds) if g.kind == "weight"]
    out = 2 * channels  # conv output: 5 x 5 at stride 2, pad 1
    assert sorted(g.ops for g in weight) == sorted([2 * rows * width * 2 * width, 2 * 5 * out * 25])
    assert gemms["activation"].ops == 2 * rows * 2 * width * rows
    assert gemms["conv"].ops == 2 * out * 25 * (channels // groups) * 9
    assert (gemms["conv"].batch, gemms["conv"].n) == (groups, out // groups)

    # The references compute each GEMM, in int8 (MatMulInteger against numpy's integer product) and in
    # float, and each convolution at its own output shape.
    for int8 in (True, False):
        reference, reference_feeds = ort_profile.reference_graph(list(ort_profile.model_gemms(path, feeds)), int8)
        session = ort.InferenceSession(reference.SerializeToString(), providers=["CPUExecutionProvider"])
        results = dict(zip([o.name for o in session.get_outputs()], session.run(None, reference_feeds)))
        weights = {i.name: onnx.numpy_helper.to_array(i) for i in reference.graph.initializer}
        for node in reference.graph.node:
            a = reference_feeds[node.input[0]]
            if node.op_type in ("MatMulInteger", "MatMul"):
                expected = a.astype(np.float64) @ weights[node.input[1]].astype(np.float64)
                np.testing.assert_allclose(results[node.output[0]], expected, rtol=0 if int8 else 1e-4,
                                           atol=0 if int8 else 1e-3)
            else:
                assert node.op_type == ("QLinearConv" if int8 else "Conv")
                assert results[node.output[0]].shape == (1, out, 5, 5)
        assert {node.op_type for node in reference.graph.node} == (
            {"MatMulInteger", "QLinearConv"} if int8 else {"MatMul", "Conv"})


def test_op_type_times_count_the_kernels_ort_runs(tmp_path):
    path = _graph(tmp_path, np.random.default_rng(0), 5, 8, 4, 2, False)
    times = ort_profile.op_type_times(path, ort_profile.graph_feeds(path), threads=1, runs=3)
    assert all(ms >= 0 for ms, _ in times.values())
    # ORT may fuse the Transpose into the product (FusedMatMul); the Conv and the Gemm run once per run.
    assert sum(n for op, (_, n) in times.items() if "MatMul" in op) == 2
    assert times["Conv"][1] + times.get("FusedConv", (0, 0))[1] == 1


def test_paired_ratio_is_taken_round_by_round():
    rng = np.random.default_rng()
    rounds = int(rng.integers(3, 10))
    # The machine's speed drifts from round to round; within a round both paths see the same factor.
    drift = rng.uniform(1.0, 3.0, rounds)
    ratios = rng.uniform(0.5, 0.9, rounds)
    graph = list(100.0 * drift)
    reference = list(100.0 * drift * ratios)
    paired = ort_profile.paired_ratio(reference, graph)
    assert paired["median"] == pytest.approx(float(np.median(ratios)), rel=1e-12)
    assert (paired["min"], paired["max"]) == pytest.approx((ratios.min(), ratios.max()), rel=1e-12)


def test_paired_ratio_needs_matching_blocks():
    with pytest.raises(ValueError, match="same number of blocks.*3 and 2"):
        ort_profile.paired_ratio([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="0 and 0"):
        ort_profile.paired_ratio([], [])


def test_gemm_kernel_share_counts_the_kernels_gemm_work_runs_in():
    rng = np.random.default_rng()
    gemm = {op: (float(rng.uniform(1, 10)), 3) for op in ("MatMulIntegerToFloat", "QAttention", "QLinearConv")}
    rest = {op: (float(rng.uniform(0.1, 2)), 5) for op in ("Gelu", "QuantizeLinear", "LayerNormalization", "Add")}
    share = ort_profile.gemm_kernel_share({**gemm, **rest})
    gemm_ms, rest_ms = sum(ms for ms, _ in gemm.values()), sum(ms for ms, _ in rest.values())
    assert share == pytest.approx(gemm_ms / (gemm_ms + rest_ms), rel=1e-12)
    assert ort_profile.gemm_kernel_share(rest) == 0.0
    with pytest.raises(ValueError, match="no kernel time"):
        ort_profile.gemm_kernel_share({})


@pytest.mark.parametrize("quantized_weight", [False, True])
def test_every_gemm_of_a_graph_runs_in_a_kernel_counted_as_gemm(tmp_path, quantized_weight):
    # However ORT fuses the graph's MatMuls, Conv and Gemm, the kernels left outside KERNEL_GEMM_OPS are
    # the layout ops around them (and a weight's DequantizeLinear ORT keeps), never a GEMM.
    path = _graph(tmp_path, np.random.default_rng(), 6, 8, 4, 2, quantized_weight)
    times = ort_profile.op_type_times(path, ort_profile.graph_feeds(path), threads=1, runs=2)
    assert set(times) - ort_profile.KERNEL_GEMM_OPS <= {"Transpose", "Flatten", "Reshape", "DequantizeLinear"}
    assert len(set(times) & ort_profile.KERNEL_GEMM_OPS) >= 2


def test_report_times_every_path_and_splits_the_gap(tmp_path, capsys):
    path = _graph(tmp_path, np.random.default_rng(), 6, 8, 4, 2, True)
    figures = ort_profile.report(path, ort_profile.graph_feeds(path), threads=1, blocks=3, runs=2, fp32_graph=path)
    assert set(figures["ms"]) == {"graph", "reference", "weight reference", "fp32", "fp32 reference"}
    paired = figures["of_reference_paired"]
    assert 0 < paired["min"] <= paired["median"] <= paired["max"]
    kernels = figures["gemm_kernels"]
    assert 0 < kernels["share"] <= 1
    assert kernels["ms"] == pytest.approx(kernels["share"] * figures["ms"]["graph"]["median"])
    assert kernels["of_reference"] == pytest.approx(figures["of_reference"] / kernels["share"])
    printed = capsys.readouterr().out
    assert f"round by round: median {paired['median']:.1%}" in printed
    assert f"GEMM kernels: {kernels['share']:.1%} of the profile" in printed
