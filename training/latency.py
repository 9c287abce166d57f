"""Batch-1 latency of a loaded :class:`fusionrt.Session`: warm-up, then timed ``Session.run`` calls.

The feeds are real samples (e.g. the test fold's first few), cycled, so caches and data-dependent
paths see what deployment sees. Reported as p50 / p90 / p99 in milliseconds: one mean hides the tail
that an edge device's frame budget cares about.

Example:
    >>> stats = measure_latency(session, batch1_feeds, warmup=20, repeats=200)  # doctest: +SKIP
    >>> stats.p50_ms  # doctest: +SKIP
    3.1
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Percentiles of the timed calls, in milliseconds."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    repeats: int

    def to_dict(self) -> dict[str, float | int]:
        """A JSON-ready dict."""
        return asdict(self)


def split_batch(feeds: Mapping[str, np.ndarray], limit: int) -> list[dict[str, np.ndarray]]:
    """The first ``limit`` samples of a batch of feeds, each as its own contiguous batch-1 feeds."""
    size = len(next(iter(feeds.values())))
    return [{name: np.ascontiguousarray(value[i:i + 1]) for name, value in feeds.items()}
            for i in range(min(size, limit))]


def measure_latency(session: Any, feeds: Sequence[Mapping[str, Any]], *, warmup: int = 20,
                    repeats: int = 200) -> LatencyStats:
    """Times ``repeats`` calls of ``session.run`` after ``warmup`` untimed ones, cycling over ``feeds``.

    Args:
        session: anything with ``run(feeds)`` (a :class:`fusionrt.Session`).
        feeds: batch-1 feeds (see :func:`split_batch`).
    """
    if not feeds:
        raise ValueError("measure_latency needs at least one batch-1 feed dict, got none")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats is {repeats} and warmup {warmup}, expected repeats >= 1 and warmup >= 0")
    cycle = itertools.cycle(feeds)
    for _ in range(warmup):  # lazy allocation, thread pools, engine autotuning
        session.run(next(cycle))
    samples = np.empty(repeats)
    for i in range(repeats):
        feed = next(cycle)
        start = time.perf_counter()
        session.run(feed)
        samples[i] = time.perf_counter() - start
    p50, p90, p99 = np.percentile(samples * 1e3, [50, 90, 99])
    return LatencyStats(float(p50), float(p90), float(p99), repeats)
