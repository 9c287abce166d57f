"""Concurrent branches on ONNX Runtime: late and intermediate fusion, MiniLM-L6 text + MobileNetV2 at 224.

Per strategy and batch, one row per execution mode (sequential, parallel, branches) and one per
branch run alone on all cores; the goal is the best mode's p50 close to the slower branch's, and never
above sequential. Random weights (latency does not depend on them). Read it as
``pytest bench/test_branches_bench.py --benchmark-only --benchmark-group-by=group
--benchmark-columns=min,median,iqr``; ``fusionrt.backends.onnxruntime.execution.choose_execution``
takes the same measurements interleaved and records the winner for ``execution="auto"``.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusionrt
from tests.tiny_bundles import export_random_bundle, random_feeds

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
from fusionrt.backends.onnxruntime.backend import physical_cores, session_options  # noqa: E402
from fusionrt.backends.onnxruntime.branches import split_bundle  # noqa: E402

TEXT_LENGTH = 64
MODES = ["sequential", "parallel", "branches"]


@pytest.fixture(scope="module", params=["late", "intermediate"])
def bundle(request, tmp_path_factory):
    from training.models import create_model

    torch.manual_seed(0)
    model = create_model(f"{request.param}_mobilenetv2", text=dict(pretrained=False), vision=dict(pretrained=False))
    path = tmp_path_factory.getbasetemp() / "bench-branches" / request.param
    path.parent.mkdir(exist_ok=True)
    return export_random_bundle(path, model.eval(), f"{request.param}_mobilenetv2", TEXT_LENGTH, ("fp32",))


def _warm(run, feeds):
    for _ in range(3):  # first runs allocate and pick kernels
        run(feeds)


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("mode", MODES)
def test_execution_mode_latency(benchmark, bundle, mode, batch):
    session = fusionrt.load(bundle, backend="onnxruntime", execution=mode)
    feeds = random_feeds(session.manifest, batch, np.random.default_rng(batch))
    _warm(session.run, feeds)
    benchmark.group = f"{bundle.name} batch {batch}"
    out = benchmark(session.run, feeds)
    assert out["score"].shape == (batch,)


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("branch", ["text", "image"])
def test_branch_alone_latency(benchmark, bundle, branch, batch):
    graph = getattr(split_bundle(bundle), branch)
    session = ort.InferenceSession(graph.SerializeToString(), session_options(physical_cores()),
                                   providers=["CPUExecutionProvider"])
    feeds = random_feeds(fusionrt.load(bundle, backend="onnxruntime").manifest, batch, np.random.default_rng(batch))
    reads = {i.name: feeds[i.name] for i in session.get_inputs()}
    _warm(lambda f: session.run(None, f), reads)
    benchmark.group = f"{bundle.name} batch {batch}"
    benchmark(session.run, None, reads)
