"""Fixtures of the latency suite: one case per ``--fusionrt-bundle`` (and per ``--fusionrt-batch``), a
session per bundle shared by its tests, and the host fingerprint in every saved baseline.

Test ids name the model, backend and precision (``test_graph[late_tiny-onnxruntime-fp32-batch1]``), never
a path, so a baseline saved on one Jetson compares with a later run wherever the bundle now lives,
and a run at another precision never compares with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..backends import RunOptions, choose
from ..bundle import read_manifest
from . import host
from .plugin import INJECT_DELAY_ENV
from .report import bundle_hash


@dataclass(frozen=True)
class BenchBundle:
    """A bundle to measure and how: the backend is resolved ("auto" becomes the one it picks here)."""

    path: Path
    name: str
    backend: str
    device: str | None
    precision: str
    threads: int | None
    execution: str

    @property
    def id(self) -> str:
        return f"{self.name}-{self.backend}-{self.precision}"

    def spec(self) -> dict[str, Any]:
        """The :mod:`.worker` spec measuring this bundle."""
        return {"bundle": str(self.path), "backend": self.backend, "device": self.device,
                "precision": self.precision, "threads": self.threads, "execution": self.execution}


def _bundles(config: pytest.Config) -> list[BenchBundle]:
    options = dict(device=config.getoption("fusionrt_device"), precision=config.getoption("fusionrt_precision"),
                   threads=config.getoption("fusionrt_threads"), execution=config.getoption("fusionrt_execution"))
    backend, bundles, names = config.getoption("fusionrt_backend"), [], set()
    for directory in config.getoption("fusionrt_bundle"):
        try:
            manifest = read_manifest(directory, verify_hashes=False)  # load() verifies the hashes
            chosen = backend if backend != "auto" else choose(manifest, RunOptions(**options))[0]
        except (ValueError, RuntimeError) as error:
            raise pytest.UsageError(f"--fusionrt-bundle {directory}: {error}") from None
        name, n = manifest.model_name, 1
        while name in names:  # two bundles of one model: keep ids apart
            n += 1
            name = f"{manifest.model_name}_{n}"
        names.add(name)
        bundles.append(BenchBundle(Path(directory).absolute(), name, chosen, **options))
    return bundles


def _batches(config: pytest.Config) -> list[int]:
    text = config.getoption("fusionrt_batch")
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise pytest.UsageError(f"--fusionrt-batch {text!r}: expected positive batch sizes like 1,8")
    return sizes


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    if "bench_bundle" in metafunc.fixturenames:
        bundles = _bundles(config)
        if bundles:
            metafunc.parametrize("bench_bundle", bundles, ids=[b.id for b in bundles], scope="module")
        else:
            metafunc.parametrize("bench_bundle", [pytest.param(None, marks=pytest.mark.skip(
                reason="no bundle to measure: pass --fusionrt-bundle DIR"))], ids=["no-bundle"])
    if "bench_batch" in metafunc.fixturenames:
        batches = _batches(config)
        metafunc.parametrize("bench_batch", batches, ids=[f"batch{b}" for b in batches])


@pytest.fixture(scope="session")
def _bench_sessions() -> dict[BenchBundle, Any]:
    return {}


@pytest.fixture
def bench_session(bench_bundle: BenchBundle, _bench_sessions: dict[BenchBundle, Any]) -> Any:
    """The bundle's :class:`~fusionrt.Session`, opened once and shared by all its tests."""
    if bench_bundle not in _bench_sessions:
        from ..session import load

        _bench_sessions[bench_bundle] = load(bench_bundle.path, backend=bench_bundle.backend,
                                             device=bench_bundle.device, precision=bench_bundle.precision,
                                             threads=bench_bundle.threads, execution=bench_bundle.execution)
    return _bench_sessions[bench_bundle]


@pytest.fixture
def bench_image_hw(request: pytest.FixtureRequest) -> tuple[int, int]:
    text = request.config.getoption("fusionrt_image_size")
    height, _, width = text.lower().partition("x")
    if not (height.isdigit() and width.isdigit()):
        raise pytest.UsageError(f"--fusionrt-image-size {text!r}: expected HxW like 480x640")
    return int(height), int(width)


@pytest.fixture
def bench_delay_ms(request: pytest.FixtureRequest) -> float:
    """The test-only delay before each timed call (option, else environment, else 0)."""
    value = request.config.getoption("fusionrt_inject_delay_ms")
    return float(os.environ.get(INJECT_DELAY_ENV, 0) if value is None else value)


@pytest.fixture
def bench_info(bench_bundle: BenchBundle) -> dict[str, Any]:
    """What every saved benchmark of this bundle records beside its timings."""
    return {"bundle": str(bench_bundle.path), "bundle_sha256": bundle_hash(bench_bundle.path),
            "backend": bench_bundle.backend, "precision": bench_bundle.precision}


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    machine_info["fusionrt"] = host.fingerprint()
