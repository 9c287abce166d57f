"""Benchmark session setup: what machine and build the numbers come from, in the report header and in
every saved baseline (``machine_info`` of ``--benchmark-save`` files), so numbers are only compared
with numbers from the same machine and build."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

import pytest

import fusionrt


def _cpu_model() -> str:
    """The CPU's marketing name (Linux ``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):  # "Model" is what ARM boards such as Jetson list
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _torch_kernels() -> str | None:
    """Which kernels fusionrt's torch ops run ("compiled" or "python"); None without torch."""
    try:
        import fusionrt.ops
    except ImportError:
        return None
    return fusionrt.ops.KERNELS


def fusionrt_machine_info() -> dict[str, Any]:
    """The facts latency depends on beyond pytest-benchmark's own machine info."""
    build = fusionrt.build_info()
    return {
        "host": platform.node(),
        "cpu_model": _cpu_model(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "fusionrt": build["version"],
        "cuda": build["cuda_version"] if fusionrt.cuda_available() else None,
        "tensorrt": build["tensorrt"],
        "onnxruntime": _version("onnxruntime"),
        "torch": _version("torch"),
        "torch_kernels": _torch_kernels(),
    }


def pytest_report_header(config: pytest.Config) -> list[str]:
    info = fusionrt_machine_info()
    load = ", ".join(f"{v:.1f}" for v in info["load_average"]) if info["load_average"] else "n/a"
    return [
        f"bench machine: {info['host']}, {info['cpu_model']}, {info['usable_cpus']} usable CPUs, load average {load}",
        f"bench build: fusionrt {info['fusionrt']}, CUDA {info['cuda']}, TensorRT {info['tensorrt']}, "
        f"onnxruntime {info['onnxruntime']}, torch {info['torch']} ({info['torch_kernels']} fusionrt op kernels)",
    ]


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    machine_info["fusionrt"] = fusionrt_machine_info()
