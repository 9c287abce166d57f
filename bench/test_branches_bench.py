"""Concurrent branches on ONNX Runtime: late and intermediate fusion, MiniLM-L6 text + MobileNetV2 at 224;
with ``FUSIONRT_BENCH_PAPER=1`` the paper-size study models (BERT-base-size text, MobileNetV2 and
ViT-B/16; :mod:`bench.paper_size`), the early ones (not splittable) included for what
``choose_execution`` picks there.

Per model and batch, one row per execution mode (sequential, parallel, branches) and one per
branch run alone on all cores; the goal is the best mode's p50 close to the slower branch's, and never
above sequential. ``test_choose_execution`` runs the calibration itself and keeps what it measured and
picked in the row's ``extra_info`` (``--benchmark-json``): the picked mode is never slower than
sequential. Random weights (latency does not depend on them). Read it as
``pytest bench/test_branches_bench.py --benchmark-only --benchmark-group-by=group
--benchmark-columns=min,median,iqr``; ``fusionrt.backends.onnxruntime.execution.choose_execution``
takes the same measurements interleaved and records the winner for ``execution="auto"``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fusionrt
from bench.paper_size import PAPER, TEXT_LENGTH, study_model
from tests.tiny_bundles import export_random_bundle, random_feeds

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
from fusionrt.backends.onnxruntime.backend import inference_session, physical_cores, session_options  # noqa: E402
from fusionrt.backends.onnxruntime.branches import split_bundle  # noqa: E402
from fusionrt.backends.onnxruntime.execution import choose_execution  # noqa: E402

MODES = ["sequential", "parallel", "branches"]
SPLITTABLE = [f"{s}_{v}" for v in ("mobilenetv2", "vit") for s in ("late", "intermediate")] if PAPER else [
    "late_mobilenetv2", "intermediate_mobilenetv2"]
MODELS = [*SPLITTABLE, "early_mobilenetv2", "early_vit"] if PAPER else SPLITTABLE


def _export(name: str, factory) -> Path:
    path = factory.getbasetemp() / ("bench-branches-paper" if PAPER else "bench-branches") / name
    path.parent.mkdir(exist_ok=True)
    return export_random_bundle(path, study_model(name), name, TEXT_LENGTH, ("fp32",))


@pytest.fixture(scope="module", params=SPLITTABLE)
def bundle(request, tmp_path_factory):
    return _export(request.param, tmp_path_factory)


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
    session = inference_session(graph.SerializeToString(), session_options(physical_cores()), "cpu")
    feeds = random_feeds(fusionrt.load(bundle, backend="onnxruntime").manifest, batch, np.random.default_rng(batch))
    reads = {i.name: feeds[i.name] for i in session.get_inputs()}
    _warm(lambda f: session.run(None, f), reads)
    benchmark.group = f"{bundle.name} batch {batch}"
    benchmark(session.run, None, reads)


@pytest.mark.parametrize("name", MODELS)
def test_choose_execution(benchmark, tmp_path_factory, name):
    """The calibration on each model: the mode it picks, every mode's p50, and the branches' core split."""
    bundle = _export(name, tmp_path_factory)
    benchmark.group = "choose_execution"
    result = benchmark.pedantic(choose_execution, args=(bundle,), kwargs=dict(repeats=30, record=False), rounds=1)
    benchmark.extra_info.update({key: result.get(key) for key in (
        "mode", "latency_ms", "branch_ms", "branch_threads", "speedup_vs_sequential", "key")})
    print(f"\n{name}: picked {result['mode']}; p50 ms {result['latency_ms']}; branches alone "
          f"{result['branch_ms']} on {result['branch_threads']} threads")
    # The rule it deploys: never a mode slower than sequential.
    assert result["latency_ms"][result["mode"]] <= result["latency_ms"]["sequential"]
