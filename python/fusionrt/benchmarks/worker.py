"""Measures one bundle in this (fresh) process: cold start, latency of both paths per batch, energy,
peak host and device memory. :mod:`.runner` starts one per bundle, so cold start sees no warm
session state and ``ru_maxrss`` is this bundle's own peak.

Protocol: ``python -m fusionrt.benchmarks.worker SPEC_JSON`` writes JSON lines to its stdout,
``{"progress": text}`` before each block and finally ``{"result": {...}}`` (a ``results[]`` entry of
the report). Anything a library prints goes to stderr, so the lines stay parseable.

Example:
    $ python -m fusionrt.benchmarks.worker '{"bundle": "runs/late/bundle", "batches": [1], "seconds": 1}'
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from ..backends import RunOptions, choose
from ..bundle import read_manifest
from ..feeds import random_feeds
from ..session import load
from . import workload
from .energy import EnergyMeter
from .measure import Stats, time_block, warm_up
from .report import PATHS, bundle_hash
from .sampler import Sampler

#: Defaults of a spec; ``runner`` fills them from the command line.
DEFAULTS: dict[str, Any] = {
    "backend": "auto", "device": None, "precision": "fp32", "threads": None, "execution": "auto",
    "batches": [1, 8], "seconds": 2.0, "image_hw": list(workload.DEFAULT_IMAGE_HW), "cold_only": False,
}


def peak_host_memory_mib() -> float:
    """This process's peak resident set (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _device_memory_sampler(device: str) -> tuple[Sampler[int], int] | None:
    """A sampler of device memory in use and the use before loading, for CUDA devices; else None."""
    if not device.startswith("cuda"):
        return None
    try:
        from .gpu import MemoryProbe

        probe = MemoryProbe(int(device.partition(":")[2] or 0))
        return Sampler(probe.used_bytes, 0.05), probe.used_bytes()
    except (RuntimeError, ValueError, OSError):
        return None


def _cold_start(session_args: dict[str, Any], manifest: Any, image_hw: tuple[int, int]) -> tuple[Any, dict[str, float]]:
    """Opens the session and makes its first run and predict, timing each (inputs made beforehand)."""
    feeds = random_feeds(manifest, 1, 0)
    texts, images = workload.raw_inputs(1, image_hw)
    start = time.perf_counter()
    session = load(**session_args)
    loaded = time.perf_counter()
    session.run(feeds)
    ran = time.perf_counter()
    session.predict(text=texts, image=images)
    predicted = time.perf_counter()
    return session, {"load_s": loaded - start, "first_run_s": ran - loaded, "first_predict_s": predicted - ran,
                     "total_s": ran - start}


def _latency(session: Any, spec: dict[str, Any], image_hw: tuple[int, int],
             progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """One entry per batch and path: warm-up, then one timed block (energy sampled over it)."""
    latency = []
    meter = EnergyMeter.find()
    for batch in spec["batches"]:
        for path in PATHS:
            progress(f"{path} batch {batch}")
            call = workload.graph_call(session, batch) if path == "graph" else \
                workload.end_to_end_call(session, batch, image_hw)
            warm_up(call, 3, min(1.0, spec["seconds"] / 5))
            with meter.block() if meter else contextlib.nullcontext():
                samples = time_block(call, spec["seconds"], warmup_calls=0, warmup_seconds=0)
            energy = meter.summary(len(samples), batch) if meter else None
            latency.append({"path": path, **Stats.of(samples, batch).to_dict(), "energy": energy})
    return latency


def measure(spec: dict[str, Any], progress: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """The report entry of the bundle ``spec`` names (see :data:`DEFAULTS` for its keys)."""
    spec = {**DEFAULTS, **spec}
    bundle = spec["bundle"]
    options = RunOptions(device=spec["device"], precision=spec["precision"], threads=spec["threads"],
                         execution=spec["execution"])
    manifest = read_manifest(bundle, verify_hashes=False)  # load() verifies; this only resolves "auto"
    backend = spec["backend"] if spec["backend"] != "auto" else choose(manifest, options)[0]
    image_hw = (int(spec["image_hw"][0]), int(spec["image_hw"][1]))
    result: dict[str, Any] = {
        "bundle": {"path": os.path.abspath(bundle), "model_name": manifest.model_name,
                   "strategy": manifest.strategy, "sha256": bundle_hash(bundle)},
        "backend": backend, "device": None, "precision": spec["precision"], "threads": spec["threads"],
        "execution": spec["execution"], "error": None,
    }
    session_args = dict(path=bundle, backend=backend, device=spec["device"], precision=spec["precision"],
                        threads=spec["threads"], execution=spec["execution"])
    device_memory = _device_memory_sampler(options.device or ("cuda" if backend == "tensorrt" else "cpu"))
    with contextlib.ExitStack() as stack:
        if device_memory is not None:
            stack.enter_context(device_memory[0])  # sampled from before load to the last block
        progress("cold start")
        session, result["cold_start"] = _cold_start(session_args, manifest, image_hw)
        result["device"] = session.device
        # The threads ONNX Runtime was given (None asked for the physical cores); other backends have none.
        result["threads"] = getattr(session._backend, "threads", spec["threads"])
        result["latency"] = [] if spec["cold_only"] else _latency(session, spec, image_hw, progress)
    result["peak_host_memory_mib"] = peak_host_memory_mib()
    result["peak_device_memory_mib"] = None
    if device_memory is not None and (used := device_memory[0].values()):
        result["peak_device_memory_mib"] = (max(used) - device_memory[1]) / 2**20
    return result
    return result


def main(argv: list[str]) -> int:
    # Protocol lines go to a private copy of stdout; fd 1 becomes stderr for whatever libraries print.
    out: IO[str] = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def emit(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")

    spec = json.loads(argv[0])
    try:
        result = measure(spec, lambda text: emit({"progress": text}))
    except Exception as error:  # reported in the bundle's entry; the runner goes on with the next bundle
        emit({"error": f"{type(error).__name__}: {error}"})
        return 1
    emit({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
