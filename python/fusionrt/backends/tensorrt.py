"""The TensorRT backend: engines built from ``model.plugins.onnx`` with fusionrt's plugins.

The engine builder (``fusionrt.engine_builder``) and the C++ runtime (``_C.EngineRunner``, built only
with TensorRT) exist, but a Session does not drive them yet, so this module only says precisely why
the backend cannot run: no pretending stub that falls back silently.

Example:
    >>> unavailable_reason()  # on a build without TensorRT  # doctest: +SKIP
    "TensorRT support is not built into this fusionrt (build_info()['tensorrt'] is None); ..."
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from .. import build_info, cuda_available
from ..bundle import Manifest


def unavailable_reason() -> str | None:
    """Why the TensorRT backend cannot run in this process (it cannot yet anywhere: see the module doc)."""
    version = build_info()["tensorrt"]
    if version is None:
        return (
            "TensorRT support is not built into this fusionrt (build_info()['tensorrt'] is None); "
            "rebuild with -DFUSIONRT_TENSORRT=ON where TensorRT is installed, or use backend='onnxruntime'"
        )
    if not cuda_available():
        return f"this fusionrt is built with TensorRT {version}, but no CUDA device is usable"
    return (
        f"this fusionrt is built with TensorRT {version}, but Session does not run TensorRT engines yet "
        "(build them with fusionrt.engine_builder); use backend='onnxruntime' or 'torch'"
    )


def open_engine(root: Path, manifest: Manifest, device: str, precision: str) -> NoReturn:
    """Would deserialize (or build and cache) the bundle's engine; raises while the runtime is missing."""
    raise RuntimeError(f"the tensorrt backend cannot run here: {unavailable_reason()}")
