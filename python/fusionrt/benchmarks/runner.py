"""``fusionrt bench``: one :mod:`.worker` process per bundle, a progress bar, the report.

A fresh process per bundle is what makes cold start cold (no warm session, allocator or runtime state
from an earlier bundle; the OS file cache is not dropped, that needs root) and ``ru_maxrss`` the
bundle's own peak host memory.

Example:
    >>> report = bench(["runs/late/bundle"], batches=[1, 8], seconds=2)  # doctest: +SKIP
    >>> report["results"][0]["latency"][0]["p50_ms"]  # doctest: +SKIP
    1.92
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import host
from .progress import Progress
from .report import PATHS, make_report
from .worker import DEFAULTS

#: Steps a bundle's progress has besides its blocks: cold start.
_EXTRA_STEPS = 1


def _failed(spec: dict[str, Any], error: str) -> dict[str, Any]:
    """The entry of a bundle that could not be measured."""
    path = Path(spec["bundle"])
    return {
        "bundle": {"path": str(path.absolute()), "model_name": None, "strategy": None, "sha256": None},
        "backend": spec["backend"], "device": spec["device"], "precision": spec["precision"],
        "threads": spec["threads"], "execution": spec["execution"], "error": error, "cold_start": None,
        "peak_host_memory_mib": None, "peak_device_memory_mib": None, "latency": [],
    }


def measure_in_subprocess(spec: dict[str, Any], progress: Progress | None = None) -> dict[str, Any]:
    """Runs the worker on ``spec``; its result entry, or a failed one saying why."""
    label = Path(spec["bundle"]).name
    command = [sys.executable, "-m", "fusionrt.benchmarks.worker", json.dumps(spec)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    assert process.stdout is not None
    result: dict[str, Any] | None = None
    error = None
    for line in process.stdout:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "progress" in message and progress is not None:
            progress.step(f"{label}: {message['progress']}")
        result = message.get("result", result)
        error = message.get("error", error)
    code = process.wait()
    if result is not None:
        return result
    return _failed(spec, error or f"the worker exited with status {code} (see its messages above)")


def bench(bundles: Sequence[str | os.PathLike[str]], *, backend: str = "auto", device: str | None = None,
          precision: str = "fp32", batches: Sequence[int] = (1, 8), threads: int | None = None,
          execution: str = "auto", seconds: float = 2.0, image_hw: Sequence[int] = DEFAULTS["image_hw"],
          show_progress: bool = True, argv: Sequence[str] = ()) -> dict[str, Any]:
    """Measures every bundle (each in its own process) and returns the report (:mod:`.report`)."""
    settings = {"backend": backend, "device": device, "precision": precision, "batches": list(batches),
                "threads": threads, "execution": execution, "seconds": seconds, "image_hw": list(image_hw)}
    steps = len(bundles) * (_EXTRA_STEPS + len(batches) * len(PATHS))
    results = []
    with Progress(steps, enabled=show_progress) as progress:
        fingerprint = host.fingerprint()  # before the runs: clocks as the runs start
        for bundle in bundles:
            results.append(measure_in_subprocess({**settings, "bundle": os.fspath(bundle)}, progress))
    return make_report(settings, fingerprint, results, list(argv))


def write_json(report: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Writes the report as indented JSON (``-`` for stdout)."""
    text = json.dumps(report, indent=2) + "\n"
    if os.fspath(path) == "-":
        sys.stdout.write(text)
    else:
        Path(path).write_text(text)
