"""The TensorRT backend and all its parts.

* :mod:`.backend`: ``TensorRTBackend``, the bundle's engine run by fusionrt's C++ runtime (``_C.EngineRunner``),
* :mod:`.engine_builder`: builds a bundle's engine for this GPU (``fusionrt build BUNDLE``),
* :mod:`.engine_cache`: the engines a bundle caches in ``engines/``, keyed by what makes one valid.

This module is the backend's entry in the table (:class:`TensorRTType`); it imports nothing beyond
fusionrt's own ``_C`` until the backend opens.

Needs three things, and says which one is missing: a fusionrt built with TensorRT (``_C.EngineRunner``),
a usable CUDA device, and the ``tensorrt`` Python package (``pip install fusionrt[trt]``, or JetPack's),
which the builder needs even for a cache hit because the cache is keyed by its version.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ... import _C, build_info, cuda_available
from ...bundle import Manifest
from ..base import Backend, BackendType
from ..options import RunOptions


def unavailable_reason() -> str | None:
    """Why the TensorRT backend cannot run in this process, or None when it can."""
    version = build_info()["tensorrt"]
    if version is None or not hasattr(_C, "EngineRunner"):
        return (
            "TensorRT support is not built into this fusionrt (build_info()['tensorrt'] is None); "
            "rebuild with -DFUSIONRT_TENSORRT=ON where TensorRT is installed, or use backend='onnxruntime'"
        )
    if not cuda_available():
        return f"this fusionrt is built with TensorRT {version}, but no CUDA device is usable (no GPU or no driver)"
    if importlib.util.find_spec("tensorrt") is None:
        return (
            f"this fusionrt is built with TensorRT {version}, but the tensorrt Python package, which builds and "
            "keys the engines, is not installed (pip install fusionrt[trt], or JetPack's python3-libnvinfer)"
        )
    return None


class TensorRTType(BackendType):
    """TensorRT on a CUDA GPU: the bundle's engine, built once per GPU model and cached in the bundle."""

    name = "tensorrt"
    title = "TensorRT"
    default_device = "cuda"
    devices = ("cuda",)

    def unavailable(self, manifest: Manifest, options: RunOptions) -> str | None:
        return unavailable_reason()

    def files(self, manifest: Manifest, options: RunOptions) -> tuple[str, ...]:
        # The engine is built from the precision's graph, or the fp32 one plus a builder flag (fp16 on
        # TensorRT 10), with or without plugin nodes (see engine_builder.build_plan): all candidates.
        precisions = (options.precision, "fp32") if options.precision == "fp16" else (options.precision,)
        variants = [manifest.variants[p] for p in precisions if p in manifest.variants]
        return tuple(name for v in variants for name in (v.onnx, v.plugins_onnx, *v.weights_files) if name is not None)

    def open(self, root: Path, manifest: Manifest, options: RunOptions) -> Backend:
        from .backend import open_engine

        return open_engine(root, manifest, self.device(options), options.precision)
