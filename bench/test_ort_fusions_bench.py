"""The graph fusion fusionrt's ONNX Runtime backend may turn off (``fusions.slow_fusions``), timed as
ONNX Runtime runs it and without it: ``Add`` + ``LayerNormalization`` fused into SkipLayerNormalization
or left as two ops, at the residual shapes of the study's text encoders and ViT (batch 1), on the
cores the backend uses. Read each group as one row per form:
``pytest bench/test_ort_fusions_bench.py --benchmark-only --benchmark-group-by=group``; the backend's
choice on this host is in ``extra_info``.
"""

from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
from fusionrt.backends.onnxruntime.backend import physical_cores, session_options  # noqa: E402
from fusionrt.backends.onnxruntime.fusions import residual_norm_graph, slow_fusions  # noqa: E402

# name: residual shape (batch, tokens, width)
SHAPES = {"MiniLM 64 tokens": (1, 64, 384), "BERT-base 64 tokens": (1, 64, 768), "ViT-B/16 197 tokens": (1, 197, 768)}
FORMS = {"fused (SkipLayerNormalization)": [], "unfused (Add + LayerNormalization)": ["SkipLayerNormFusion"]}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("shape", SHAPES)
def test_residual_norm_latency(benchmark, shape, form):
    dims = SHAPES[shape]
    session = ort.InferenceSession(residual_norm_graph(dims), session_options(physical_cores()),
                                   providers=["CPUExecutionProvider"], disabled_optimizers=FORMS[form])
    rng = np.random.default_rng(0)
    feeds = {name: rng.standard_normal(dims).astype(np.float32) for name in ("x", "y")}
    for _ in range(10):
        session.run(None, feeds)
    benchmark.group = f"onnxruntime {ort.__version__} residual LayerNorm {shape}"
    benchmark.extra_info["backend_turns_off"] = list(slow_fusions("CPUExecutionProvider"))
    (out,) = benchmark(session.run, None, feeds)
    assert out.shape == dims and np.isfinite(out).all()
