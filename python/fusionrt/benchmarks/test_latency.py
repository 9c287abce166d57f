"""The latency suite over bundles alone: graph only and end to end per batch size, and cold start,
as pytest-benchmark measurements that ``--benchmark-save`` / ``--benchmark-compare-fail`` track.

Runs with the deployment install (``fusionrt[onnx]`` plus pytest-benchmark)::

    pytest -p fusionrt.benchmarks.plugin --pyargs fusionrt.benchmarks --fusionrt-bundle runs/late/bundle \\
        --benchmark-save=orin-maxn
    pytest -p fusionrt.benchmarks.plugin --pyargs fusionrt.benchmarks --fusionrt-bundle runs/late/bundle \\
        --benchmark-compare --benchmark-compare-fail=median:10%

Each path is warmed up, then timed by pytest-benchmark in its own block (see :mod:`.measure`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from . import workload
from .measure import warm_up
from .worker import peak_host_memory_mib

if TYPE_CHECKING:  # pytest imports conftest itself; only its type is needed here
    from .conftest import BenchBundle


def _measure(benchmark: Any, call: Any, group: str, info: dict[str, Any]) -> None:
    warm_up(call, calls=3, seconds=0.2)
    benchmark.group = group
    benchmark.extra_info.update(info)
    benchmark(call)
    benchmark.extra_info["peak_host_memory_mib"] = peak_host_memory_mib()  # this pytest process so far


def test_graph(benchmark, bench_bundle: BenchBundle, bench_session, bench_batch: int, bench_delay_ms: float,
               bench_info) -> None:
    """``Session.run`` on prepared feeds: the graph alone."""
    call = workload.with_delay(workload.graph_call(bench_session, bench_batch), bench_delay_ms)
    _measure(benchmark, call, f"{bench_bundle.id} batch {bench_batch}", {**bench_info, "batch": bench_batch})


def test_end_to_end(benchmark, bench_bundle: BenchBundle, bench_session, bench_batch: int, bench_delay_ms: float,
                    bench_image_hw: tuple[int, int], bench_info) -> None:
    """``Session.predict`` on raw strings and frames: tokenizer, image pre-processing and graph."""
    call = workload.with_delay(workload.end_to_end_call(bench_session, bench_batch, bench_image_hw), bench_delay_ms)
    _measure(benchmark, call, f"{bench_bundle.id} batch {bench_batch}",
             {**bench_info, "batch": bench_batch, "image_hw": list(bench_image_hw)})


def _cold_start(spec: dict[str, Any]) -> dict[str, Any]:
    """One fresh worker process: load + first run + first predict; its result entry."""
    run = subprocess.run([sys.executable, "-m", "fusionrt.benchmarks.worker", json.dumps(spec)],
                         capture_output=True, text=True, check=False)
    for line in run.stdout.splitlines():
        message = json.loads(line)
        if "result" in message:
            return message["result"]
        if "error" in message:
            raise RuntimeError(f"cold start failed: {message['error']}")
    raise RuntimeError(f"cold start worker exited with {run.returncode}: {run.stderr[-2000:]}")


def test_cold_start(benchmark, bench_bundle: BenchBundle, request: pytest.FixtureRequest, bench_info) -> None:
    """A fresh process to its first answers: interpreter start, imports, load (manifest and hash checks,
    session or engine), first run and first predict. ``extra_info`` splits it (seconds)."""
    rounds = request.config.getoption("fusionrt_cold_rounds")
    if rounds < 1:
        pytest.skip("--fusionrt-cold-rounds 0")
    spec = {**bench_bundle.spec(), "cold_only": True}
    benchmark.group = f"{bench_bundle.id} cold start"
    result = benchmark.pedantic(_cold_start, args=(spec,), rounds=rounds, iterations=1)
    benchmark.extra_info.update(bench_info, cold_start=result["cold_start"],
                                peak_host_memory_mib=result["peak_host_memory_mib"])
