"""pytest plugin of the latency suite (``test_latency.py``): its command-line options.

Options must be known before pytest parses the command line, which a ``conftest.py`` inside an
installed package is not, so they live here and are loaded with ``-p``::

    pytest -p fusionrt.benchmarks.plugin --pyargs fusionrt.benchmarks --fusionrt-bundle runs/late/bundle \\
        --benchmark-save=orin-maxn
    python -m fusionrt.benchmarks --fusionrt-bundle runs/late/bundle --benchmark-save=orin-maxn   # the same

Importing this module costs nothing: no fusionrt runtime, no ONNX Runtime.
"""

from __future__ import annotations

import pytest

#: The environment variable the delay option falls back to (test-only, like the option).
INJECT_DELAY_ENV = "FUSIONRT_BENCH_INJECT_DELAY_MS"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fusionrt", "fusionrt latency suite (fusionrt.benchmarks)")
    group.addoption("--fusionrt-bundle", action="append", default=[], metavar="DIR",
                    help="bundle directory to measure (repeat for several)")
    group.addoption("--fusionrt-backend", default="auto", help="auto, tensorrt, onnxruntime or torch (default auto)")
    group.addoption("--fusionrt-device", default=None, help="cpu, cuda, cuda:N (default: the backend's)")
    group.addoption("--fusionrt-precision", default="fp32", help="fp32, fp16 or int8 (default fp32)")
    group.addoption("--fusionrt-batch", default="1,8", help="batch sizes, comma-separated (default 1,8)")
    group.addoption("--fusionrt-threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    group.addoption("--fusionrt-execution", default="auto", help="auto, sequential, parallel or branches")
    group.addoption("--fusionrt-image-size", default="480x640", help="raw frame HxW end to end (default 480x640)")
    group.addoption("--fusionrt-cold-rounds", type=int, default=3,
                    help="fresh processes timed for cold start (default 3; 0 skips cold start)")
    group.addoption("--fusionrt-inject-delay-ms", type=float, default=None, metavar="MS",
                    help=f"TEST ONLY: sleep MS before every timed call, to show a slower run fails "
                         f"--benchmark-compare-fail (default: ${INJECT_DELAY_ENV} or 0)")
