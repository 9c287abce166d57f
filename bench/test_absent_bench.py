"""An absent modality costs nothing: ``Session.run`` latency with both modalities, text only and image
only, per fusion strategy, on ONNX Runtime and torch (MiniLM-L6-size text + MobileNetV2 at 224 px; with
``FUSIONRT_BENCH_PAPER=1`` BERT-base-size text, :mod:`bench.paper_size`). Random weights.

One group per backend, strategy and batch, one row per condition (``both``, ``text only``, ``image only``).
Late, intermediate and decision fusion run only the present branch and the head when a modality is
absent for the whole batch (:mod:`fusionrt.absent`), so their single-modality rows sit near that
branch's cost; early and hybrid run the whole graph, so theirs sit near ``both``. Read it as
``pytest bench/test_absent_bench.py --benchmark-only --benchmark-group-by=group
--benchmark-columns=min,median,iqr``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fusionrt
from bench.paper_size import PAPER, TEXT_LENGTH, study_model
from tests.tiny_bundles import export_random_bundle, random_feeds

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

BACKENDS = ["onnxruntime", "torch"]
MODELS = ["late_mobilenetv2", "intermediate_mobilenetv2", "decision", "early_mobilenetv2", "hybrid"]
#: presence row per condition (text, image).
CONDITIONS = {"both": (True, True), "text only": (True, False), "image only": (False, True)}


@pytest.fixture(scope="module", params=MODELS)
def bundle(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.getbasetemp() / ("bench-absent-paper" if PAPER else "bench-absent") / request.param
    path.parent.mkdir(exist_ok=True)
    return export_random_bundle(path, study_model(request.param), request.param, TEXT_LENGTH, ("fp32",))


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("condition", list(CONDITIONS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_absent_modality_latency(benchmark, bundle, backend, condition, batch):
    session = fusionrt.load(bundle, backend=backend, execution="sequential")
    feeds = random_feeds(session.manifest, batch, np.random.default_rng(batch))
    feeds["presence"][:] = CONDITIONS[condition]
    for _ in range(3):  # first runs allocate, pick kernels, and (one modality) build the branch parts
        session.run(feeds)
    benchmark.group = f"absent {backend} {bundle.name} batch {batch}"
    out = benchmark(session.run, feeds)
    assert out["score"].shape == (batch,)
