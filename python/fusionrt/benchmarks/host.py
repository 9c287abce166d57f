"""The host fingerprint of a benchmark report: what the numbers depend on besides the bundle.

CPU model and cores, memory, GPU (name, compute capability, SM count, memory), Jetson facts (board,
L4T / JetPack, power mode, clocks, power rails) and the versions of CUDA, TensorRT, ONNX Runtime,
numpy, Python and fusionrt. Every part is optional: what a machine lacks is None, never an error.

Example:
    >>> info = fingerprint()
    >>> sorted(info)
    ['cpu', 'gpu', 'hostname', 'jetson', 'machine', 'memory_total_mib', 'os', 'versions']
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from .. import _C, build_info, cuda_available
from . import gpu, jetson


def _version(*distributions: str) -> str | None:
    """The installed version of the first distribution found (``onnxruntime-gpu`` is still ``onnxruntime``)."""
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def cpu_facts(root: Path = Path("/")) -> dict[str, Any]:
    """``{"model", "cores_logical", "cores_usable", "cores_physical"}`` from ``/proc/cpuinfo``."""
    model, physical = None, set()
    try:
        text = (root / "proc/cpuinfo").read_text()
    except OSError:
        text = ""
    physical_id = core_id = None
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key in ("model name", "Model", "Hardware") and model is None:  # x86; Jetson / ARM boards
            model = value
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            core_id = value
            physical.add((physical_id, core_id))
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "model": model or platform.processor() or platform.machine(),
        "cores_logical": os.cpu_count(),
        "cores_usable": usable,
        # ARM kernels list no core ids: there every logical CPU is a core.
        "cores_physical": len(physical) or os.cpu_count(),
    }


def memory_total_mib(root: Path = Path("/")) -> float | None:
    try:
        for line in (root / "proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpu_facts(index: int = 0) -> dict[str, Any] | None:
    """GPU ``index``'s name, compute capability, SM count, memory and whether it is integrated; None
    when fusionrt has no usable GPU."""
    if not cuda_available():
        return None
    try:
        props = _C.cuda_device_properties(index)
    except (ValueError, RuntimeError):
        return None
    major, minor = props["compute_capability"]
    return {
        "name": props["name"],
        "compute_capability": f"{major}.{minor}",
        # Newer builds of _C report it; the driver answers for older ones.
        "sm_count": props.get("multiprocessor_count") or gpu.sm_count(index),
        "memory_mib": props["total_memory"] / 2**20,
        "integrated": bool(props["integrated"]),
    }


def jetson_facts(root: Path = Path("/")) -> dict[str, Any] | None:
    """Board, L4T / JetPack release, power mode, clocks and rail names; None off a Jetson."""
    l4t = jetson.l4t_release(root)
    if l4t is None:
        return None
    return {
        "board": jetson.board_model(root),
        "l4t": l4t,
        "jetpack": jetson.jetpack_release() if root == Path("/") else None,
        "nvpmodel": jetson.nvpmodel_mode() if root == Path("/") else None,
        "clocks_mhz": jetson.clocks_mhz(root),
        "power_rails": [rail.name for rail in jetson.power_rails(root)] or None,
    }


def versions() -> dict[str, Any]:
    """Versions of what runs the graph. ``tensorrt`` is the one installed (else the one built against)."""
    build = build_info()
    return {
        "fusionrt": build["version"],
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "onnxruntime": _version("onnxruntime", "onnxruntime-gpu"),
        "cuda": build["cuda_version"] if build["cuda"] else None,
        "tensorrt": _version("tensorrt", "tensorrt-cu12", "tensorrt-cu13") or build["tensorrt"],
        "tensorrt_built": build["tensorrt"],
    }


def fingerprint(root: Path = Path("/")) -> dict[str, Any]:
    """Everything above in one JSON-ready dict."""
    return {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu": cpu_facts(root),
        "memory_total_mib": memory_total_mib(root),
        "gpu": gpu_facts(),
        "jetson": jetson_facts(root),
        "versions": versions(),
    }
