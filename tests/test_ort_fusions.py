"""ONNX Runtime fusions the backend turns off where they are slower (fusionrt.backends.onnxruntime.fusions):
the choice follows the timings, the backend's sessions carry it out, and outputs do not change."""

from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from fusionrt.backends.onnxruntime import fusions  # noqa: E402
from fusionrt.backends.onnxruntime.backend import inference_session, session_options  # noqa: E402


@pytest.fixture
def fresh_choice():
    """``slow_fusions`` measured anew in the test (it is cached per process), and again afterwards."""
    fusions.slow_fusions.cache_clear()
    yield
    fusions.slow_fusions.cache_clear()


@pytest.mark.parametrize(("fused", "unfused", "disabled"), [
    (250e-6, 30e-6, ("SkipLayerNormFusion",)),  # onnxruntime 1.30-1.32 here: 8x slower fused
    (44e-6, 49e-6, ()),                         # 1.20-1.26: fused is the faster
    (40e-6, 30e-6, ()),                         # within SLOWER_BY: noise, not a slow kernel
])
def test_the_fusion_is_turned_off_only_where_its_kernel_is_clearly_slower(monkeypatch, fresh_choice, fused, unfused,
                                                                         disabled):
    def timed(runs, repeats):
        for run in runs.values():  # both sessions really run the same pattern
            assert run()[0].shape == fusions.TIMED_SHAPE
        return {"fused": [fused] * repeats, "unfused": [unfused] * repeats}

    sessions = []
    real_session = ort.InferenceSession

    def recording_session(*args, **kwargs):
        sessions.append(real_session(*args, **kwargs))
        return sessions[-1]

    monkeypatch.setattr(fusions, "_interleaved", timed)
    monkeypatch.setattr(ort, "InferenceSession", recording_session)
    assert fusions.slow_fusions("CPUExecutionProvider") == disabled
    assert len(sessions) == 2


def test_gpu_providers_keep_every_fusion_and_cpu_gets_a_known_choice(fresh_choice):
    assert fusions.slow_fusions("CUDAExecutionProvider") == ()
    assert fusions.slow_fusions("CPUExecutionProvider") in ((), ("SkipLayerNormFusion",))


def _bert_style_graph(tokens: int, width: int, rng: np.random.Generator) -> onnx.ModelProto:
    """x -> MatMul -> + x -> LayerNormalization -> MatMul -> + residual -> LayerNormalization: two of
    the residual norms SkipLayerNormFusion rewrites, with weights between them."""
    helper = onnx.helper
    weights = [onnx.numpy_helper.from_array((rng.standard_normal((width, width)) / width ** 0.5).astype(np.float32),
                                            f"w{i}") for i in range(2)]
    affine = [onnx.numpy_helper.from_array(rng.standard_normal(width).astype(np.float32), f"{n}{i}")
              for i in range(2) for n in ("g", "b")]
    nodes = []
    x = "x"
    for i in range(2):
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"h{i}"]),
                  helper.make_node("Add", [f"h{i}", x], [f"s{i}"]),
                  helper.make_node("LayerNormalization", [f"s{i}", f"g{i}", f"b{i}"], [f"n{i}"], axis=-1,
                                   epsilon=1e-12)]
        x = f"n{i}"
    graph = helper.make_graph(nodes, "bert_style", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                                                  ["batch", tokens, width])],
                              [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None)], weights + affine)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize(("tokens", "width"), [(7, 48), (64, 96)])
@pytest.mark.parametrize("choice", [(), ("SkipLayerNormFusion",)])
def test_backend_sessions_carry_out_the_choice_without_changing_outputs(monkeypatch, tmp_path, tokens, width, choice):
    rng = np.random.default_rng()
    model = _bert_style_graph(tokens, width, rng).SerializeToString()
    monkeypatch.setattr("fusionrt.backends.onnxruntime.backend.slow_fusions", lambda provider: choice)
    options = session_options(1)
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    session = inference_session(model, options, "cpu")
    optimized = [node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert optimized.count("SkipLayerNormalization") == (0 if choice else 2)
    assert optimized.count("LayerNormalization") == (2 if choice else 0)

    x = rng.standard_normal((3, tokens, width)).astype(np.float32)
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    reference = ort.InferenceSession(model, plain, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(session.run(None, {"x": x})[0], reference, atol=1e-5, rtol=1e-5)
