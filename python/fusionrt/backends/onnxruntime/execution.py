"""Execution modes of the ONNX Runtime backend, and the calibration that picks one per bundle and host.

``sequential`` (one session, ORT_SEQUENTIAL), ``parallel`` (one session, ORT_PARALLEL) and ``branches``
(text and image branch sessions on two threads, then the head; late / intermediate only).
:func:`choose_execution` times them at batch 1, interleaved, against the slower branch run alone on
all cores, and records the fastest in the bundle's ``execution.json`` (outside the manifest's hashed
files, like ``engines/``), keyed by device, precision, threads and CPU. ``load(..., execution="auto")``
uses that record, and ``sequential`` where there is none.

Example:
    >>> result = choose_execution("runs/late_mobilenetv2/bundle", repeats=30)  # doctest: +SKIP
    >>> result["mode"], result["ratio_to_slower_branch"]  # doctest: +SKIP
    ('branches', 1.04)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .branches import NotSplittableError, check_splittable, split_bundle
from .bundle import Manifest, read_manifest

EXECUTIONS = ("auto", "sequential", "parallel", "branches")
CALIBRATION_FILE = "execution.json"
#: How much faster (a fraction of sequential's median) a concurrent mode must be to be deployed.
DEPLOY_MARGIN = 0.05


def calibration_key(device: str, precision: str, threads: int) -> str:
    """What a calibration is valid for: the device, precision, thread count and this host's CPU model."""
    return f"onnxruntime/{device}/{precision}/{threads}t/{_cpu_model()}"


def recorded_mode(root: str | os.PathLike[str], device: str, precision: str, threads: int) -> str | None:
    """The mode :func:`choose_execution` recorded in the bundle for this key, or None."""
    try:
        records = json.loads((Path(root) / CALIBRATION_FILE).read_text())
    except (OSError, ValueError):
        return None  # no calibration (or an unreadable one): auto falls back to sequential
    mode = records.get(calibration_key(device, precision, threads), {}).get("mode")
    return mode if mode in EXECUTIONS[1:] else None


def check_execution(execution: str, manifest: Manifest, backend: str) -> None:
    """Raises ValueError when ``execution`` is unknown, needs another backend or a splittable strategy."""
    if execution not in EXECUTIONS:
        raise ValueError(f"unknown execution {execution!r}, expected one of {list(EXECUTIONS)}")
    if execution in ("parallel", "branches") and backend != "onnxruntime":
        raise ValueError(f"execution {execution!r} is an ONNX Runtime mode; the {backend} backend runs 'sequential'")
    if execution == "branches":
        check_splittable(manifest.strategy)


def choose_execution(
    bundle: str | os.PathLike[str],
    repeats: int = 30,
    *,
    batch: int = 1,
    device: str = "cpu",
    precision: str = "fp32",
    threads: int | None = None,
    margin: float = DEPLOY_MARGIN,
    record: bool = True,
) -> dict[str, Any]:
    """Times every ONNX Runtime execution mode of ``bundle`` and returns (and records) the fastest.

    Rounds visit every mode in turn, so load on a shared machine hits all alike; the slower branch
    alone (on all ``threads``) is timed in the same rounds. Each visit is a short burst whose first
    calls are not timed (see :func:`_interleaved`); ``repeats`` timed calls per mode in all. Latencies
    are medians in milliseconds. A concurrent mode replaces sequential only when its median is more than
    ``margin`` (a fraction) below sequential's, so timing noise on a loaded machine never moves ``auto``
    to a mode that is not clearly faster.

    Returns:
        ``{"mode": chosen mode, "latency_ms": {mode: median}, "min_ms": {mode: min},
        "slower_branch_ms": median of the slower branch alone, "branch_ms": {"text": .., "image": ..},
        "ratio_to_slower_branch": latency_ms[mode] / slower_branch_ms,
        "speedup_vs_sequential": latency_ms["sequential"] / latency_ms[mode], "batch", "repeats", "key"}``.
        For strategies that are not splittable (early, hybrid, decision) only ``sequential`` is timed,
        the branch fields are None and ``"not_splittable"`` says why.
    """
    from .backends.onnxruntime import OnnxRuntimeBackend, ort, physical_cores, provider_for, session_options
    from .backends.onnxruntime_branches import BranchedOnnxRuntimeBackend

    root = Path(bundle)
    manifest = read_manifest(root)
    if precision not in manifest.variants:
        raise ValueError(f"bundle {root} has no {precision!r} variant; it has {sorted(manifest.variants)}")
    threads = threads or physical_cores()
    model = root / manifest.variants[precision].onnxruntime_file
    feeds = random_feeds(manifest, batch)
    runs: dict[str, Callable[[], Any]] = {
        "sequential": _bound(OnnxRuntimeBackend(model, manifest, device, threads), feeds)
    }
    not_splittable = None
    try:
        graphs = split_bundle(root, precision)
    except NotSplittableError as error:
        not_splittable = str(error)
    else:
        runs["parallel"] = _bound(OnnxRuntimeBackend(model, manifest, device, threads, "parallel"), feeds)
        runs["branches"] = _bound(BranchedOnnxRuntimeBackend(model, manifest, device, threads), feeds)
        for name, graph in (("text", graphs.text), ("image", graphs.image)):
            session = ort.InferenceSession(graph.SerializeToString(), session_options(threads),
                                           providers=[provider_for(device)])
            reads = {i.name: feeds[i.name] for i in session.get_inputs()}
            runs[f"{name}_branch"] = lambda s=session, f=reads: s.run(None, f)
    times = _interleaved(runs, repeats)
    medians = {name: statistics.median(t) for name, t in times.items()}
    latency = {m: medians[m] for m in EXECUTIONS[1:] if m in medians}
    fastest = min(latency, key=latency.__getitem__)
    mode = fastest if latency[fastest] < latency["sequential"] * (1 - margin) else "sequential"
    slower = max(medians["text_branch"], medians["image_branch"]) if not_splittable is None else None
    result = {
        "mode": mode,
        "latency_ms": latency,
        "min_ms": {m: min(times[m]) for m in latency},
        "slower_branch_ms": slower,
        "branch_ms": None if slower is None else {"text": medians["text_branch"], "image": medians["image_branch"]},
        "ratio_to_slower_branch": None if slower is None else latency[mode] / slower,
        "speedup_vs_sequential": latency["sequential"] / latency[mode],
        "batch": batch,
        "repeats": repeats,
        "key": calibration_key(device, precision, threads),
    }
    if not_splittable is not None:
        result["not_splittable"] = not_splittable
    if record:
        _record(root, result)
    return result


def random_feeds(
    manifest: Manifest, batch: int, rng: np.random.Generator | int = 0, presence_probability: float = 1.0
) -> dict[str, np.ndarray]:
    """Random graph feeds of ``batch`` samples in the manifest's input specs.

    Token ids stay below 1000 (inside any real vocabulary); each modality is present with
    ``presence_probability`` (1: every modality present).
    """
    rng = np.random.default_rng(rng)
    feeds = {}
    for name, spec in manifest.inputs.items():
        shape = tuple(batch if isinstance(d, str) else d for d in spec.shape)
        if spec.dtype == "bool":
            feeds[name] = rng.random(shape) < presence_probability
        elif name == "input_ids":
            feeds[name] = rng.integers(0, 1000, shape).astype(spec.dtype)
        elif name == "attention_mask":
            feeds[name] = np.ones(shape, spec.dtype)
        else:
            feeds[name] = rng.standard_normal(shape).astype(spec.dtype)
    return feeds


def _bound(backend: Any, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
    return lambda: backend.run(feeds)


#: Per visit of a mode: calls run untimed first, then timed. ONNX Runtime's intra-op threads spin for
#: a while after each run; the untimed calls outlast the previous mode's spinning threads, which would
#: otherwise compete for the cores and inflate whichever mode runs next (several-fold on 2 cores).
SETTLE_CALLS, TIMED_CALLS = 10, 15


def _interleaved(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Milliseconds per call of each run: ``repeats`` timed calls each, in bursts visiting the runs in
    turn, every burst after :data:`SETTLE_CALLS` untimed calls."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    while any(len(t) < repeats for t in times.values()):
        for name, run in runs.items():
            for _ in range(SETTLE_CALLS):
                run()
            for _ in range(min(TIMED_CALLS, repeats - len(times[name]))):
                start = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - start) * 1e3)
    return times


def _record(root: Path, result: dict[str, Any]) -> None:
    """Adds ``result`` under its key to the bundle's calibration file (atomically replaced)."""
    path = root / CALIBRATION_FILE
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError):
        records = {}
    records[result["key"]] = result
    with tempfile.NamedTemporaryFile("w", dir=root, suffix=".tmp", delete=False) as file:
        json.dump(records, file, indent=2)
    os.replace(file.name, path)


def _cpu_model() -> str:
    """The CPU model name (Linux ``/proc/cpuinfo``), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
