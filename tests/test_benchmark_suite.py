"""The pytest-benchmark latency suite shipped in the wheel (``fusionrt.benchmarks``), run as on a Jetson
with the deployment install (torch unimportable): a saved run's rerun passes
``--benchmark-compare-fail=median:10%`` and a run made slower on purpose fails it.

The suite is told to sleep a fixed 200 ms before each timed call in every run here
(``--fusionrt-inject-delay-ms``, a test-only option), so the 10 % threshold is judged on a stable
median rather than on this shared machine's noise; the slow run sleeps 300 ms (+50 %).
"""

from __future__ import annotations

import json

import pytest

from bench_helpers import run_deployed
from tiny_bundles import tiny_bundle

pytest.importorskip("onnxruntime")
pytest.importorskip("pytest_benchmark")


def _suite(bundle, storage, *args: str) -> list[str]:
    return ["-m", "pytest", "-p", "fusionrt.benchmarks.plugin", "--pyargs", "fusionrt.benchmarks",
            "--fusionrt-bundle", str(bundle), "--fusionrt-batch", "1", "-p", "no:cacheprovider",
            f"--benchmark-storage=file://{storage}", "--benchmark-min-rounds=5", "--benchmark-max-time=0.1",
            *args]


def test_rerun_passes_the_comparison_and_a_slower_run_fails_it(tmp_path_factory, tmp_path):
    bundle = tiny_bundle(tmp_path_factory, "late")
    storage = tmp_path / "baselines"

    saved = run_deployed(_suite(bundle, storage, "--fusionrt-inject-delay-ms", "200", "--fusionrt-cold-rounds", "1",
                                "--benchmark-save=device"), tmp_path)
    assert saved.returncode == 0, saved.stdout + saved.stderr
    assert "3 passed" in saved.stdout  # graph, end to end, cold start: all run without torch
    (baseline,) = storage.rglob("0001_device.json")
    data = json.loads(baseline.read_text())
    names = sorted(b["name"] for b in data["benchmarks"])
    assert names == ["test_cold_start[late_tiny-onnxruntime-fp32]", "test_end_to_end[late_tiny-onnxruntime-fp32-batch1]",
                     "test_graph[late_tiny-onnxruntime-fp32-batch1]"]
    graph = next(b for b in data["benchmarks"] if b["name"].startswith("test_graph"))
    assert graph["extra_info"]["bundle_sha256"] and graph["extra_info"]["backend"] == "onnxruntime"
    assert graph["stats"]["median"] >= 0.2
    cold = next(b for b in data["benchmarks"] if b["name"].startswith("test_cold_start"))
    assert cold["extra_info"]["cold_start"]["load_s"] > 0
    assert data["machine_info"]["fusionrt"]["versions"]["onnxruntime"]

    # Only the graph is compared: it is what the injected delay dominates.
    compare = ("-k", "test_graph", "--benchmark-compare=0001", "--benchmark-compare-fail=median:10%")
    rerun = run_deployed(_suite(bundle, storage, "--fusionrt-inject-delay-ms", "200", *compare), tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "Performance has regressed" not in rerun.stdout + rerun.stderr

    slower = run_deployed(_suite(bundle, storage, "--fusionrt-inject-delay-ms", "300", *compare), tmp_path)
    assert slower.returncode != 0, slower.stdout + slower.stderr
    assert "Performance has regressed" in slower.stdout + slower.stderr


def test_without_a_bundle_the_suite_skips_saying_what_to_pass(tmp_path):
    run = run_deployed(["-m", "pytest", "-p", "fusionrt.benchmarks.plugin", "--pyargs", "fusionrt.benchmarks",
                        "-p", "no:cacheprovider", "-rs"], tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pass --fusionrt-bundle DIR" in run.stdout
