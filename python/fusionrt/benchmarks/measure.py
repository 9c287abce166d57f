"""Timing a callable: warm-up calls, then one block of timed calls, reduced to percentiles.

Each path (graph only, end to end) is timed in its own block, never interleaved call by call with
another: ONNX Runtime's intra-op threads spin for a while after a call, so whatever runs right after
them is slowed, and alternating paths would charge each path for the other's spinning.

Example:
    >>> import time
    >>> samples = time_block(lambda: time.sleep(0.001), seconds=0.05, warmup_seconds=0.0, warmup_calls=1)
    >>> stats = Stats.of(samples, batch=1)
    >>> stats.p50_ms <= stats.p90_ms <= stats.p99_ms
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def warm_up(fn: Callable[[], object], calls: int = 3, seconds: float = 0.0) -> int:
    """Calls ``fn`` at least ``calls`` times and for at least ``seconds``; returns the calls made.

    The first calls of a session pay for lazy allocation, kernel selection and cold caches; timing
    them would measure the start, not the steady state (cold start is measured separately).
    """
    made, deadline = 0, time.perf_counter() + seconds
    while made < calls or time.perf_counter() < deadline:
        fn()
        made += 1
    return made


def time_block(
    fn: Callable[[], object],
    seconds: float,
    *,
    warmup_calls: int = 3,
    warmup_seconds: float | None = None,
    min_calls: int = 5,
    max_calls: int = 1_000_000,
) -> np.ndarray:
    """Per-call wall times (seconds) of ``fn`` called back to back for about ``seconds``.

    Warm-up first (``warmup_seconds`` defaults to a fifth of ``seconds``, at most 1 s); then at least
    ``min_calls`` timed calls, so a slow model still gives percentiles.
    """
    warm_up(fn, warmup_calls, min(1.0, seconds / 5) if warmup_seconds is None else warmup_seconds)
    samples: list[float] = []
    clock = time.perf_counter
    deadline = clock() + seconds
    while len(samples) < min_calls or (len(samples) < max_calls and clock() < deadline):
        start = clock()
        fn()
        samples.append(clock() - start)
    return np.asarray(samples)


@dataclass(frozen=True)
class Stats:
    """Latency percentiles of one block (milliseconds) and its single-stream throughput.

    ``throughput_per_s`` is samples (not calls) per second: ``batch * calls / total time``.
    """

    batch: int
    calls: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    throughput_per_s: float

    @classmethod
    def of(cls, samples: np.ndarray, batch: int) -> Stats:
        """Reduces per-call seconds to stats. Linear interpolation keeps p50 <= p90 <= p99."""
        if len(samples) == 0:
            raise ValueError("no samples to reduce, expected at least one timed call")
        ms = np.asarray(samples, dtype=np.float64) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(
            batch=batch, calls=len(ms), p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99),
            mean_ms=float(ms.mean()), min_ms=float(ms.min()), max_ms=float(ms.max()),
            throughput_per_s=float(batch * len(ms) / (ms.sum() / 1e3)),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
