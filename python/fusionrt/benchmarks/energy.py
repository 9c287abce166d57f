"""Energy per inference from a Jetson's power rails, sampled while a block of calls runs.

Energy of a block = mean power of a rail over the block x the block's duration; per call and per
sample (``batch`` samples a call). The input rail (``VDD_IN`` on Orin) is the whole module's energy;
the others (CPU + GPU + CV, SoC) are reported beside it. Idle power is not subtracted: it is what the
device spends per inference at that rate.

Example:
    >>> energy = summarize([{"VDD_IN": 5000.0}, {"VDD_IN": 7000.0}], seconds=2.0, calls=100, batch=1, source="doc")
    >>> energy["mj_per_call"]
    120.0
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import jetson
from .sampler import Sampler


def summarize(
    samples: list[dict[str, float]], seconds: float, calls: int, batch: int, source: str
) -> dict[str, Any] | None:
    """The ``energy`` entry of a latency result; None without samples."""
    if not samples or calls <= 0 or seconds <= 0:
        return None
    rails = {}
    for name in samples[0]:
        values = [s[name] for s in samples if name in s]
        mean_mw = sum(values) / len(values)
        per_call = mean_mw * seconds / calls  # mW x s = mJ
        rails[name] = {"mean_mw": mean_mw, "mj_per_call": per_call, "mj_per_sample": per_call / batch}
    main = jetson.input_rail(rails)
    return {
        "source": source,
        "samples": len(samples),
        "input_rail": main,
        "mj_per_call": rails[main]["mj_per_call"] if main else None,
        "mj_per_sample": rails[main]["mj_per_sample"] if main else None,
        "rails": rails,
    }


class EnergyMeter:
    """Samples the rails during :meth:`block`; :meth:`summary` turns the last block into energy."""

    source = ""

    @contextlib.contextmanager
    def block(self) -> Iterator[None]:
        raise NotImplementedError

    def samples(self) -> tuple[list[dict[str, float]], float]:
        """The last block's samples and its duration in seconds."""
        raise NotImplementedError

    def summary(self, calls: int, batch: int) -> dict[str, Any] | None:
        samples, seconds = self.samples()
        return summarize(samples, seconds, calls, batch, self.source)

    @staticmethod
    def find(root: Path = Path("/")) -> EnergyMeter | None:
        """The INA3221 sysfs rails where readable, else tegrastats where installed, else None."""
        rails = jetson.power_rails(root)
        if rails:
            return SysfsMeter(rails)
        if root == Path("/") and shutil.which("tegrastats"):
            return TegrastatsMeter()
        return None


class SysfsMeter(EnergyMeter):
    """Reads the rails' sysfs files every 20 ms from a thread."""

    source = "ina3221 sysfs"

    def __init__(self, rails: list[jetson.Rail], interval_s: float = 0.02) -> None:
        self._sampler: Sampler[dict[str, float]] = Sampler(lambda: jetson.read_rails(rails), interval_s)

    @contextlib.contextmanager
    def block(self) -> Iterator[None]:
        with self._sampler:
            yield

    def samples(self) -> tuple[list[dict[str, float]], float]:
        return self._sampler.values(), self._sampler.seconds


class TegrastatsMeter(EnergyMeter):
    """Runs ``tegrastats --interval 20`` for the block and parses its rail readings."""

    source = "tegrastats"

    def __init__(self, interval_ms: int = 20) -> None:
        self._interval = interval_ms
        self._samples: list[dict[str, float]] = []
        self._seconds = 0.0

    @contextlib.contextmanager
    def block(self) -> Iterator[None]:
        import time

        self._samples = []
        try:
            process = subprocess.Popen(["tegrastats", "--interval", str(self._interval)], stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True)
        except OSError:
            yield
            return
        assert process.stdout is not None
        stream = process.stdout

        def read() -> None:
            for line in stream:
                if rails := jetson.parse_tegrastats(line):
                    self._samples.append(rails)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._seconds = time.perf_counter() - start
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
            reader.join(timeout=5)

    def samples(self) -> tuple[list[dict[str, float]], float]:
        return list(self._samples), self._seconds
