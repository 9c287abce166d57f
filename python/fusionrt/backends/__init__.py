"""Backends: what runs a bundle's graph for a :class:`~fusionrt.session.Session`.

Each backend module holds one class with the same small surface (:class:`Backend`); this module
says which backends can run here (without importing their frameworks where a module lookup
suffices) and picks one for ``backend="auto"``: TensorRT when it and a GPU are usable, else ONNX
Runtime, else torch.

Example:
    >>> from fusionrt import backends
    >>> backends.choose(manifest, device="cpu")  # doctest: +SKIP
    ('onnxruntime', 'tensorrt: TensorRT support is not built into this fusionrt ...')
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..bundle import Manifest

NAMES = ("tensorrt", "onnxruntime", "torch")  # the order "auto" tries them in


class Backend(Protocol):
    """The surface a Session uses: native arrays in (``adopt``), numpy dict out (``run``)."""

    name: str
    device: str
    output_names: tuple[str, ...]

    def adopt(self, value: Any) -> Any:
        """``value`` as this backend's native array, without a copy where it can."""

    def dtype(self, name: str) -> Any:
        """The dtype object native arrays carry for numpy dtype ``name`` ("float32", "bool")."""

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """Runs the graph on adopted, validated feeds; thread-safe."""


def unavailable(name: str, manifest: Manifest, device: str) -> str | None:
    """Why backend ``name`` cannot run ``manifest`` on ``device`` here, or None when it can."""
    if name == "tensorrt":
        from .tensorrt import unavailable_reason

        return unavailable_reason()
    if name == "onnxruntime":
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed (pip install fusionrt[onnx])"
        if device != "cpu":
            from .onnxruntime import provider_for

            try:
                provider_for(device)
            except ValueError as error:
                return str(error)
        return None
    if name == "torch":
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install fusionrt[train])"
        if manifest.torch_program is None:
            return "the bundle has no torch program (model.pt2)"
        return None
    raise ValueError(f"unknown backend {name!r}, expected 'auto' or one of {list(NAMES)}")


def available(manifest: Manifest, device: str = "cpu") -> dict[str, str | None]:
    """``{backend: None if usable else why not}`` for every backend, in ``auto``'s order."""
    return {name: unavailable(name, manifest, device) for name in NAMES}


def choose(manifest: Manifest, device: str | None) -> tuple[str, str]:
    """The backend ``auto`` picks and why (the reasons the ones before it were passed over)."""
    skipped = []
    for name in NAMES:
        reason = unavailable(name, manifest, device or default_device(name))
        if reason is None:
            return name, "; ".join(skipped) or "first choice"
        skipped.append(f"{name}: {reason}")
    raise RuntimeError("no backend can run this bundle here: " + "; ".join(skipped))


def open_backend(
    name: str, root: Path, manifest: Manifest, device: str, precision: str, threads: int | None,
    execution: str = "auto",
) -> Backend:
    """Opens backend ``name`` on the bundle at ``root`` (manifest validated, precision in its variants).

    ``execution`` ("auto", "sequential", "parallel", "branches", see :mod:`fusionrt.execution`) only
    changes ONNX Runtime; "auto" is the mode calibrated for this bundle and host, else sequential.
    """
    from ..execution import check_execution, recorded_mode

    check_execution(execution, manifest, name)
    reason = unavailable(name, manifest, device)
    if reason is not None:
        raise RuntimeError(f"the {name} backend cannot run here: {reason}")
    if name == "onnxruntime":
        from .onnxruntime import OnnxRuntimeBackend, physical_cores

        model = root / manifest.variants[precision].onnxruntime_file
        if execution == "auto":
            execution = recorded_mode(root, device, precision, threads or physical_cores()) or "sequential"
        if execution == "branches":
            from .onnxruntime_branches import BranchedOnnxRuntimeBackend

            return BranchedOnnxRuntimeBackend(model, manifest, device, threads)
        return OnnxRuntimeBackend(model, manifest, device, threads, execution)
    if name == "torch":
        from .torch import TorchBackend

        if precision != "fp32":
            raise ValueError(
                f"the torch backend runs model.pt2 in fp32, got precision {precision!r}; "
                "use backend='onnxruntime' or 'tensorrt' for the fp16 / int8 variants"
            )
        return TorchBackend(root / manifest.torch_program, tuple(manifest.outputs), device)
    from .tensorrt import open_engine

    return open_engine(root, manifest, device, precision)


def default_device(name: str) -> str:
    """The device a backend runs on when the caller names none: TensorRT is GPU-only, the others use the CPU."""
    return "cuda" if name == "tensorrt" else "cpu"
