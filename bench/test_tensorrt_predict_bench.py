"""``Session.predict`` on TensorRT (issue #16 item 1): a 640x480 camera frame pre-processed on the GPU
straight into the engine's input (one uint8 upload, ``TensorRTBackend.run_images``) against the host
path it replaces (the fused CPU op, then the float batch uploaded: ``Session.run(raw_feeds(...))``), on
a late MobileNetV2 fp16 bundle at batch 1 and 8. Both include tokenising (predict also makes its
Prediction objects, a few microseconds), so the ratio of the medians is what the GPU path saves per call.

Needs TensorRT and a CUDA GPU (skipped otherwise). Read it as ``pytest bench/test_tensorrt_predict_bench.py
--benchmark-only --benchmark-group-by=group --benchmark-columns=min,median,iqr``.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusionrt
from bench.paper_size import PAPER, SIZE_NAME, TEXT_LENGTH, study_model
from fusionrt import _C
from fusionrt.preprocessing import TextTokenizer, raw_feeds
from tests.tiny_bundles import export_random_bundle

FRAME = (480, 640, 3)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    if not hasattr(_C, "EngineRunner") or not fusionrt.cuda_available():
        pytest.skip("needs a fusionrt built with TensorRT and a CUDA GPU")
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    pytest.importorskip("torch")
    path = tmp_path_factory.getbasetemp() / ("bench-trt-predict-paper" if PAPER else "bench-trt-predict")
    bundle = export_random_bundle(path, study_model("late_mobilenetv2"), "late_mobilenetv2", TEXT_LENGTH, ("fp32",))
    return fusionrt.load(bundle, backend="tensorrt", precision="fp16")


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("path", ["host_preprocess", "gpu_preprocess"])
def test_predict_cuda_preprocessing(benchmark, session, path, batch):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, FRAME, dtype=np.uint8) for _ in range(batch)]
    texts = ["an honest, moving and very funny film"] * batch
    manifest = session.manifest
    tokenizer = TextTokenizer(session.path / manifest.text.tokenizer, manifest.text.max_length)
    if path == "gpu_preprocess":
        def call():
            return session.predict(text=texts, image=frames)
    else:
        def call():
            return session.run(raw_feeds(manifest, tokenizer(texts), frames))
    for _ in range(5):  # first runs allocate, pick kernels and capture the CUDA graph
        call()
    benchmark.group = f"late_mobilenetv2 tensorrt fp16 {SIZE_NAME} predict 640x480 batch {batch}"
    benchmark(call)
