"""Image pre-processing (issue #16 item 1): a 640x480 camera frame to the 224x224 NCHW float input,
PIL's resize + numpy (the path before the fused op) against the fused op; and ``Session.predict``
(tokenise + pre-process + run) against ``Session.run`` on the graph inputs it makes, on a late
MobileNetV2 int8 bundle.

Targets: the fused op >= 3x faster than the PIL path; predict <= 1.1x run. The bundle's text encoder
is MiniLM-L6-size by default (a quick export); ``FUSIONRT_BENCH_PAPER=1`` exports the paper-size model
(:mod:`bench.paper_size`; a few minutes). Read it as ``pytest bench/test_preprocess_bench.py
--benchmark-only --benchmark-group-by=group --benchmark-columns=min,median,iqr``.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusionrt
from bench.paper_size import PAPER, SIZE_NAME, TEXT_LENGTH, study_model
from fusionrt.bundle import ImageSpec
from fusionrt.preprocessing import TextTokenizer, _preprocess_with_pil, preprocess_images
from tests.tiny_bundles import export_random_bundle

pytest.importorskip("PIL.Image")

FRAME = (480, 640, 3)
SPEC = ImageSpec(size=[224, 224])


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, FRAME, dtype=np.uint8)


@pytest.mark.parametrize("path", ["pil_numpy", "fused"])
def test_preprocess_640x480_frame(benchmark, frame, path):
    run = {"pil_numpy": _preprocess_with_pil, "fused": preprocess_images}[path]
    benchmark.group = "preprocess 640x480 -> 224x224"
    out, _ = benchmark(run, [frame], SPEC)
    assert out.shape == (1, 3, 224, 224)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    pytest.importorskip("torch")
    path = tmp_path_factory.getbasetemp() / ("bench-predict-paper" if PAPER else "bench-predict")
    bundle = export_random_bundle(path, study_model("late_mobilenetv2"), "late_mobilenetv2", TEXT_LENGTH,
                                  ("fp32", "int8"))
    return fusionrt.load(bundle, backend="onnxruntime", precision="int8")


@pytest.mark.parametrize("path", ["run", "predict"])
def test_predict_against_run(benchmark, session, frame, path):
    text = "an honest, moving and very funny film"
    manifest = session.manifest
    ids, mask, _ = TextTokenizer(session.path / manifest.text.tokenizer, manifest.text.max_length)([text])
    pixels, _ = preprocess_images([frame], manifest.image)
    feeds = {"input_ids": ids, "attention_mask": mask, "image": pixels}
    if "presence" in manifest.inputs:
        feeds["presence"] = np.ones((1, 2), bool)
    call = (lambda: session.run(feeds)) if path == "run" else (lambda: session.predict(text=text, image=frame))
    for _ in range(5):  # first runs allocate and pick kernels
        call()
    benchmark.group = f"late_mobilenetv2 int8 {SIZE_NAME} batch 1"
    benchmark(call)
