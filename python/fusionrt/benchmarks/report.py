"""The ``fusionrt bench`` JSON report: schema ``fusionrt.bench/1``, its checker and a text table.

Layout (``?`` marks a value that may be null)::

    {"schema": "fusionrt.bench/1", "created": ISO-8601 UTC, "command": [argv],
     "settings": {"backend", "precision", "batches": [int], "threads"?, "execution", "seconds",
                  "image_hw": [h, w]},
     "host": host.fingerprint(),
     "results": [{
        "bundle": {"path", "model_name", "strategy", "sha256"},
        "backend", "device", "precision", "threads"?, "execution", "error"?,
        "cold_start": {"load_s", "first_run_s", "first_predict_s", "total_s"},
        "peak_host_memory_mib", "peak_device_memory_mib"?,
        "latency": [{"path": "graph" | "end_to_end", "batch", "calls", "p50_ms", "p90_ms", "p99_ms",
                     "mean_ms", "min_ms", "max_ms", "throughput_per_s", "energy"?}]}]}

A bundle that failed has ``error`` set and no measurements. A new field may be added under the same
schema; a renamed or removed one, or one whose meaning changes, takes ``fusionrt.bench/2``.

Example:
    >>> problems(make_report({}, {}, [], argv=[]))[0]
    'settings is missing backend'
"""

from __future__ import annotations

import datetime
import hashlib
import os
from pathlib import Path
from typing import Any

from ..bundle import MANIFEST_NAME

SCHEMA = "fusionrt.bench/1"
PATHS = ("graph", "end_to_end")

_SETTINGS = ("backend", "precision", "batches", "threads", "execution", "seconds", "image_hw")
_HOST = ("hostname", "cpu", "memory_total_mib", "gpu", "jetson", "versions")
_RESULT = ("bundle", "backend", "device", "precision", "threads", "execution", "error", "cold_start",
           "peak_host_memory_mib", "peak_device_memory_mib", "latency")
_COLD = ("load_s", "first_run_s", "first_predict_s", "total_s")
_LATENCY = ("path", "batch", "calls", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms",
            "throughput_per_s", "energy")
_VERSIONS = ("fusionrt", "onnxruntime", "cuda", "tensorrt")


def bundle_hash(bundle: str | os.PathLike[str]) -> str:
    """SHA-256 of the bundle's ``manifest.json``, which lists every file's hash: so it names the whole
    bundle's content (engines cached later in ``engines/`` are not part of it).

    Example:
        >>> bundle_hash("runs/late/bundle")  # doctest: +SKIP
        '3f1c...'
    """
    return hashlib.sha256((Path(bundle) / MANIFEST_NAME).read_bytes()).hexdigest()


def make_report(settings: dict[str, Any], host: dict[str, Any], results: list[dict[str, Any]],
                argv: list[str]) -> dict[str, Any]:
    """A report of ``results`` (one per bundle) measured with ``settings`` on ``host``."""
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": list(argv),
        "settings": settings,
        "host": host,
        "results": results,
    }


def _missing(where: str, data: Any, keys: tuple[str, ...]) -> list[str]:
    if not isinstance(data, dict):
        return [f"{where} is {type(data).__name__}, expected an object"]
    return [f"{where} is missing {key}" for key in keys if key not in data]


def _latency_problems(where: str, entry: Any) -> list[str]:
    found = _missing(where, entry, _LATENCY)
    if found:
        return found
    if entry["path"] not in PATHS:
        found.append(f"{where}.path is {entry['path']!r}, expected one of {list(PATHS)}")
    numbers = [entry[k] for k in ("p50_ms", "p90_ms", "p99_ms", "throughput_per_s")]
    if not all(isinstance(n, (int, float)) for n in numbers):
        return [*found, f"{where} has non-numeric percentiles or throughput: {numbers}"]
    p50, p90, p99, throughput = numbers
    if not 0 <= p50 <= p90 <= p99:
        found.append(f"{where}: expected 0 <= p50 <= p90 <= p99, got {p50}, {p90}, {p99}")
    if throughput <= 0:
        found.append(f"{where}.throughput_per_s is {throughput}, expected > 0")
    if not isinstance(entry["calls"], int) or entry["calls"] < 1:
        found.append(f"{where}.calls is {entry['calls']!r}, expected a positive integer")
    return found


def problems(report: Any) -> list[str]:
    """What makes ``report`` not a valid ``fusionrt.bench/1`` report; empty when it is one.

    Checks the fields each level must have, that each measured bundle has latencies for both paths,
    and that the numbers are sane (p50 <= p90 <= p99, throughput > 0).
    """
    found = _missing("report", report, ("schema", "created", "command", "settings", "host", "results"))
    if found:
        return found
    if report["schema"] != SCHEMA:
        found.append(f"report.schema is {report['schema']!r}, expected {SCHEMA!r}")
    found += _missing("settings", report["settings"], _SETTINGS)
    found += _missing("host", report["host"], _HOST)
    if isinstance(report["host"], dict) and "versions" in report["host"]:
        found += _missing("host.versions", report["host"]["versions"], _VERSIONS)
    if not isinstance(report["results"], list):
        return [*found, "report.results is not a list"]
    for i, result in enumerate(report["results"]):
        where = f"results[{i}]"
        missing = _missing(where, result, _RESULT)
        found += missing
        if missing:
            continue
        found += _missing(f"{where}.bundle", result["bundle"], ("path", "model_name", "strategy", "sha256"))
        if result["error"] is not None:
            continue
        found += _missing(f"{where}.cold_start", result["cold_start"], _COLD)
        if not result["latency"]:
            found.append(f"{where}.latency is empty")
        for j, entry in enumerate(result["latency"]):
            found += _latency_problems(f"{where}.latency[{j}]", entry)
        paths = {entry.get("path") for entry in result["latency"] if isinstance(entry, dict)}
        if result["latency"] and paths != set(PATHS):
            found.append(f"{where}.latency covers paths {sorted(map(str, paths))}, expected {list(PATHS)}")
    return found


def table(report: dict[str, Any]) -> str:
    """A plain-text table: one row per bundle, path and batch."""
    header = f"{'bundle':<24}{'backend/precision':<22}{'path':<12}{'batch':>6}{'p50 ms':>10}{'p90 ms':>10}" \
             f"{'p99 ms':>10}{'samples/s':>11}{'mJ/sample':>11}"
    lines = [header, "-" * len(header)]
    for result in report["results"]:
        name = Path(result["bundle"]["path"]).name[:23]
        engine = f"{result['backend']}/{result['precision']}"
        if result["error"] is not None:
            lines.append(f"{name:<24}{engine:<22}error: {result['error']}")
            continue
        for entry in result["latency"]:
            energy = entry["energy"]["mj_per_sample"] if entry["energy"] and entry["energy"]["mj_per_sample"] else None
            lines.append(
                f"{name:<24}{engine:<22}{entry['path']:<12}{entry['batch']:>6}{entry['p50_ms']:>10.3f}"
                f"{entry['p90_ms']:>10.3f}{entry['p99_ms']:>10.3f}{entry['throughput_per_s']:>11.1f}"
                f"{'-' if energy is None else f'{energy:.2f}':>11}"
            )
        cold = result["cold_start"]
        device = result["peak_device_memory_mib"]
        lines.append(
            f"{'':<24}cold start {cold['total_s'] * 1e3:.0f} ms (load {cold['load_s'] * 1e3:.0f}, first run "
            f"{cold['first_run_s'] * 1e3:.0f}), peak host memory {result['peak_host_memory_mib']:.0f} MiB"
            + ("" if device is None else f", peak device memory {device:.0f} MiB")
        )
    return "\n".join(lines)
