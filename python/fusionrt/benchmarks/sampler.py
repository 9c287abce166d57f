"""A background thread that reads a value every few milliseconds while a block of calls runs (power
rails, device memory).

Reads are cheap sysfs / driver calls; the models release the GIL while they compute, so sampling
every 20 ms costs the timed calls almost nothing.

Example:
    >>> import time
    >>> with Sampler(lambda: 5.0, interval_s=0.01) as sampler:
    ...     time.sleep(0.05)
    >>> sampler.values()[0]
    5.0
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Sampler(Generic[T]):
    """Calls ``read`` every ``interval_s`` from entering to leaving the ``with`` block (once at each end
    too). A read that raises ends sampling quietly: what was read so far is kept."""

    def __init__(self, read: Callable[[], T], interval_s: float = 0.02) -> None:
        self._read = read
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._values: list[T] = []
        self.seconds = 0.0

    def _take(self) -> bool:
        try:
            self._values.append(self._read())
            return True
        except Exception:  # a rail or driver that stops answering must never fail the benchmark
            return False

    def _loop(self) -> None:
        while not self._stop.wait(self._interval) and self._take():
            pass

    def __enter__(self) -> Sampler[T]:
        self._values.clear()
        self._stop.clear()
        self._take()
        self._start = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name="fusionrt-bench-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.seconds = time.perf_counter() - self._start
        self._take()

    def values(self) -> list[T]:
        """The values read, in order."""
        return list(self._values)
