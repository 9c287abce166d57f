"""Execution modes of the ONNX Runtime backend, and the calibration that picks one per bundle and host.

``sequential`` (one session, ORT_SEQUENTIAL), ``parallel`` (one session, ORT_PARALLEL) and ``branches``
(text and image branch sessions on two threads, then the head; late / intermediate only).
:func:`choose_execution` times them at batch 1, interleaved, against the slower branch run alone on
all cores, and records the fastest in the bundle's ``execution.json`` (outside the manifest's hashed
files, like ``engines/``), keyed by device, precision, threads and CPU. ``load(..., execution="auto")``
uses that record, and ``sequential`` where there is none. The file is untrusted like the rest of the
bundle: :func:`read_records` checks every record and raises a :class:`~fusionrt.bundle.BundleError`
naming the file and the field when one is malformed. Which backend runs which mode is the backend
table's (:data:`fusionrt.backends.BACKENDS`).

Example:
    >>> result = choose_execution("runs/late/bundle", repeats=30, options=RunOptions(threads=4))  # doctest: +SKIP
    >>> result["mode"], result["ratio_to_slower_branch"]  # doctest: +SKIP
    ('branches', 1.04)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import write_text_atomic
from ...bundle import BundleError, read_manifest
from ...feeds import random_feeds
from ...graph_io import IMAGE, TEXT
from ...typed_json import SchemaError, parse
from ..options import EXECUTIONS, RunOptions
from .branches import NotSplittableError, split_bundle

#: The modes a calibration times and records ("auto" picks one of them).
MODES = EXECUTIONS[1:]
CALIBRATION_FILE = "execution.json"
#: How to repair a malformed calibration file, appended to its errors.
_REPAIR = f" (delete {CALIBRATION_FILE} to run sequential, or calibrate again with choose_execution)"
#: How much faster (a fraction of sequential's median) a concurrent mode must be to be deployed.
DEPLOY_MARGIN = 0.05


def calibration_key(options: RunOptions) -> str:
    """What a calibration is valid for: the device, precision, thread count and this host's CPU model
    (``options.threads`` None: the physical cores, as the backend uses)."""
    from .backend import physical_cores

    threads = options.threads or physical_cores()
    return f"onnxruntime/{options.device or 'cpu'}/{options.precision}/{threads}t/{_cpu_model()}"


@dataclass
class ExecutionRecord:
    """One calibration in ``execution.json``, as :func:`choose_execution` returns and records it (see
    its Returns). Only ``mode`` and ``key`` are needed to deploy; the timings are kept for reports."""

    mode: str
    key: str
    latency_ms: dict[str, float] = field(default_factory=dict)
    min_ms: dict[str, float] = field(default_factory=dict)
    slower_branch_ms: float | None = None
    branch_ms: dict[str, float] | None = None
    branch_threads: dict[str, int] | None = None
    ratio_to_slower_branch: float | None = None
    speedup_vs_sequential: float | None = None
    batch: int = 1
    repeats: int = 0
    not_splittable: str | None = None


def read_records(root: str | os.PathLike[str]) -> dict[str, ExecutionRecord]:
    """The calibration records of the bundle at ``root`` by key; ``{}`` when it has no calibration file.

    Raises:
        BundleError: the file cannot be read, is not UTF-8 JSON, is not an object of records, or a
            record has an unknown or mistyped field, an unknown mode or another record's key. The
            message names the file and the field; deleting the file (auto then runs sequential) or
            calibrating again repairs it.
    """
    path = Path(root) / CALIBRATION_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}  # never calibrated
    except OSError as error:
        raise BundleError(f"{path} cannot be read: {error}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise BundleError(f"{path} is not UTF-8 text: {error}{_REPAIR}") from None
    except (json.JSONDecodeError, RecursionError) as error:
        raise BundleError(f"{path} is not valid JSON: {error}{_REPAIR}") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path} holds a {type(data).__name__}, expected a JSON object of calibration records "
                          f"by key{_REPAIR}")
    records = {}
    for key, value in data.items():
        where = f"[{key!r}]"
        try:
            record = parse(ExecutionRecord, value, where)
        except SchemaError as error:
            raise BundleError(f"{path}: {error}{_REPAIR}") from None
        if record.mode not in MODES:
            raise BundleError(f"{path}: {where}.mode is {record.mode!r}, expected one of {list(MODES)}{_REPAIR}")
        if record.key != key:
            raise BundleError(f"{path}: {where}.key is {record.key!r}, expected the key it is filed under{_REPAIR}")
        records[key] = record
    return records


def recorded_mode(root: str | os.PathLike[str], options: RunOptions) -> str | None:
    """The mode :func:`choose_execution` recorded in the bundle for ``options``' key, or None when the
    bundle has no calibration for it. Raises :class:`~fusionrt.bundle.BundleError` for a malformed
    calibration file (:func:`read_records`)."""
    record = read_records(root).get(calibration_key(options))
    return None if record is None else record.mode


def recorded_branch_threads(root: str | os.PathLike[str], options: RunOptions) -> tuple[int, int] | None:
    """The (text, image) intra-op threads :func:`choose_execution` timed ``branches`` with for ``options``'
    key, or None without such a calibration. Raises :class:`~fusionrt.bundle.BundleError` for a
    malformed calibration file or a split that is not at least one thread per branch."""
    record = read_records(root).get(calibration_key(options))
    if record is None or record.branch_threads is None:
        return None
    split = tuple(record.branch_threads.get(m, 0) for m in (TEXT, IMAGE))
    if not all(isinstance(n, int) and n >= 1 for n in split):
        raise BundleError(f"{Path(root) / CALIBRATION_FILE}: [{record.key!r}].branch_threads is "
                          f"{record.branch_threads}, expected text and image >= 1{_REPAIR}")
    return split  # type: ignore[return-value]


def choose_execution(
    bundle: str | os.PathLike[str],
    repeats: int = 30,
    *,
    options: RunOptions = RunOptions(),
    batch: int = 1,
    margin: float = DEPLOY_MARGIN,
    record: bool = True,
) -> dict[str, Any]:
    """Times every ONNX Runtime execution mode of ``bundle`` and returns (and records) the fastest.

    ``options`` give the device (None: "cpu"), precision and threads to time with (its execution is
    ignored: every mode is timed). Rounds visit every mode in turn, so load on a shared machine hits
    all alike; the slower branch alone (on all threads) is timed in the same rounds. Each visit is a
    short burst whose first calls are not timed (see :func:`_interleaved`); ``repeats`` timed calls per
    mode in all. The branches alone are timed first as well, and ``branches`` splits the cores between
    them in proportion to those latencies (:func:`~.branched.branch_threads`); the split is recorded
    and deployed with the mode. Latencies are medians in milliseconds. A concurrent mode replaces
    sequential only when
    its median is more than ``margin`` (a fraction) below sequential's, so timing noise on a loaded
    machine never moves ``auto`` to a mode that is not clearly faster.

    Returns:
        ``{"mode": chosen mode, "latency_ms": {mode: median}, "min_ms": {mode: min},
        "slower_branch_ms": median of the slower branch alone, "branch_ms": {"text": .., "image": ..},
        "branch_threads": {"text": .., "image": ..} (the split ``branches`` ran with),
        "ratio_to_slower_branch": latency_ms[mode] / slower_branch_ms,
        "speedup_vs_sequential": latency_ms["sequential"] / latency_ms[mode], "batch", "repeats", "key"}``.
        For strategies that are not splittable (early, hybrid, decision) only ``sequential`` is timed,
        the branch fields are None and ``"not_splittable"`` says why.
    """
    from .backend import OnnxRuntimeBackend, inference_session, physical_cores, session_options
    from .branched import BranchedOnnxRuntimeBackend, branch_threads

    root = Path(bundle)
    manifest = read_manifest(root)
    precision = options.precision
    if precision not in manifest.variants:
        raise ValueError(f"bundle {root} has no {precision!r} variant; it has {sorted(manifest.variants)}")
    device = options.device or "cpu"
    threads = options.threads or physical_cores()
    model = root / manifest.variants[precision].onnxruntime_file
    feeds = random_feeds(manifest, batch)
    runs: dict[str, Callable[[], Any]] = {
        "sequential": _bound(OnnxRuntimeBackend(model, manifest, device, threads), feeds)
    }
    not_splittable = None
    split = None
    try:
        graphs = split_bundle(root, precision)
    except NotSplittableError as error:
        not_splittable = str(error)
    else:
        alone: dict[str, Callable[[], Any]] = {}
        for modality, graph in ((TEXT, graphs.text), (IMAGE, graphs.image)):
            session = inference_session(graph.SerializeToString(), session_options(threads), device)
            reads = {i.name: feeds[i.name] for i in session.get_inputs()}
            alone[_branch_run(modality)] = lambda s=session, f=reads: s.run(None, f)
        # What each branch costs decides how many cores it gets when both run at once.
        first = _interleaved(alone, min(repeats, TIMED_CALLS))
        costs = tuple(statistics.median(first[_branch_run(m)]) for m in (TEXT, IMAGE))
        text_threads, image_threads = branch_threads(threads, costs)
        split = {TEXT: text_threads, IMAGE: image_threads}
        runs["parallel"] = _bound(OnnxRuntimeBackend(model, manifest, device, threads, "parallel"), feeds)
        runs["branches"] = _bound(
            BranchedOnnxRuntimeBackend(model, manifest, device, threads, (text_threads, image_threads)), feeds)
        runs.update(alone)
    times = _interleaved(runs, repeats)
    medians = {name: statistics.median(t) for name, t in times.items()}
    latency = {m: medians[m] for m in MODES if m in medians}
    fastest = min(latency, key=latency.__getitem__)
    mode = fastest if latency[fastest] < latency["sequential"] * (1 - margin) else "sequential"
    branch_ms = None if not_splittable is not None else {m: medians[_branch_run(m)] for m in (TEXT, IMAGE)}
    slower = None if branch_ms is None else max(branch_ms.values())
    result = {
        "mode": mode,
        "latency_ms": latency,
        "min_ms": {m: min(times[m]) for m in latency},
        "slower_branch_ms": slower,
        "branch_ms": branch_ms,
        "branch_threads": split,
        "ratio_to_slower_branch": None if slower is None else latency[mode] / slower,
        "speedup_vs_sequential": latency["sequential"] / latency[mode],
        "batch": batch,
        "repeats": repeats,
        "key": calibration_key(options.replace(device=device, threads=threads)),
    }
    if not_splittable is not None:
        result["not_splittable"] = not_splittable
    if record:
        _record(root, result)
    return result


def _branch_run(modality: str) -> str:
    """The name under which one branch alone is timed."""
    return f"{modality}_branch"


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
    """Adds ``result`` under its key to the bundle's calibration file (atomically replaced). A malformed
    file is replaced by this calibration alone, with a warning: calibrating again is its repair."""
    try:
        records: dict[str, Any] = {key: asdict(record) for key, record in read_records(root).items()}
    except BundleError as error:
        warnings.warn(f"{error}; replacing it with this calibration", stacklevel=3)
        records = {}
    records[result["key"]] = result
    write_text_atomic(root / CALIBRATION_FILE, json.dumps(records, indent=2))


def _cpu_model() -> str:
    """The CPU model name (Linux ``/proc/cpuinfo``), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
