"""The TensorRT backend: the bundle's engine (built once, cached in the bundle) run by ``_C.EngineRunner``.

Opening builds the engine for the requested precision with
:func:`~fusionrt.backends.tensorrt.engine_builder.build_engine` (a cache hit returns at once) and
deserialises it on the GPU. ``run`` hands the feeds to the C++
runtime as they are: numpy arrays, DLPack producers (torch tensors) and ``__cuda_array_interface__``
producers (CuPy), on the host or on the engine's GPU, with no copy in Python. ``run_images`` (what
``Session.predict`` uses) takes decoded uint8 frames instead of the image input: each crosses to the GPU
once, as uint8, and the CUDA pre-processing kernel writes it into the engine's own input buffer, as
jetson-inference feeds its engines.

What it needs, and why it cannot run without it, is :func:`fusionrt.backends.tensorrt.unavailable_reason`.

Example:
    >>> session = fusionrt.load("bundle", backend="tensorrt", precision="fp16")  # doctest: +SKIP
    >>> session.run(feeds)["score"]  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ... import _C
from ...bundle import BundleError, ImageSpec, Manifest
from ...graph_io import PIXELS
from ...preprocessing import fused, preprocess_images
from .engine_builder import build_engine

# The engine's batch range. Batch 1 is what the edge runs, so the engine is tuned for it; 8 covers the
# batched calls the benchmarks and offline scoring make. `fusionrt build` builds other ranges.
MAX_BATCH = 8
OPT_BATCH = 1


def device_index(device: str) -> int:
    """The CUDA device index of ``device`` ("cuda" -> 0, "cuda:1" -> 1); ValueError for anything else."""
    kind, _, index = device.partition(":")
    if kind != "cuda" or not (index == "" or index.isdigit()):
        raise ValueError(f"device {device!r} is not supported by the tensorrt backend, expected 'cuda' or 'cuda:N'")
    return int(index or 0)


class NumericDtype:
    """A dtype that equals numpy's and torch's spelling of the same type (``float32``, ``int64``, ``bool``).

    The engine takes numpy arrays and torch tensors alike, so the Session's feed check must accept both
    dtype kinds; numpy and torch dtypes both defer to this object's ``__eq__`` / ``__ne__``.
    """

    __slots__ = ("name", "_numpy", "_torch")

    def __init__(self, name: str) -> None:
        self.name = name
        self._numpy = np.dtype(name)
        self._torch = f"torch.{name}"

    def __eq__(self, other: object) -> bool:
        return other == self._numpy if isinstance(other, np.dtype) else str(other) == self._torch

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self._numpy)

    def __repr__(self) -> str:
        return f"NumericDtype({self.name!r})"


class TensorRTBackend:
    """Runs one cached engine of a bundle with fusionrt's C++ runtime (CUDA graphs on)."""

    name = "tensorrt"

    def __init__(self, engine: Path, manifest: Manifest, device: str) -> None:
        self.device = device
        self.engine = engine
        self._runner = _C.EngineRunner(engine, device=device_index(device), cuda_graphs=True)
        self.output_names = tuple(t["name"] for t in self._runner.outputs)
        inputs = [t["name"] for t in self._runner.inputs]
        if set(inputs) != set(manifest.inputs) or set(self.output_names) != set(manifest.outputs):
            raise BundleError(
                f"engine {engine.name} has inputs {inputs} and outputs {list(self.output_names)}, expected "
                f"{list(manifest.inputs)} and {list(manifest.outputs)} (the manifest's); rebuild it with "
                "fusionrt build --rebuild"
            )

    @staticmethod
    def dtype(name: str) -> NumericDtype:
        """A dtype equal to numpy's and torch's ``name``, since the runtime takes both."""
        return NumericDtype(name)

    @staticmethod
    def adopt(value: Any) -> Any:
        """``value`` itself, which the runtime views (numpy, DLPack and CUDA arrays), or a contiguous copy
        of a strided one: the engine binds contiguous memory only, and a strided feed must give the
        contiguous copy's answer (torch: ``.contiguous()``; numpy, CuPy: ``.copy()``, C order)."""
        if hasattr(value, "is_contiguous"):
            return value if value.is_contiguous() else value.contiguous()
        flags = getattr(value, "flags", None)
        if flags is not None and not flags.c_contiguous and hasattr(value, "copy"):
            return value.copy()
        return value

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """Runs the engine (GIL released while the GPU works); returns every output as numpy."""
        return self._runner.run(feeds)

    def run_images(self, feeds: dict[str, np.ndarray], images: list[np.ndarray | None],
                   spec: ImageSpec) -> dict[str, np.ndarray]:
        """Runs the engine with its image input made on the GPU from ``images`` (decoded HWC uint8 RGB
        arrays, None for an absent sample) as ``spec`` says, and every other input from ``feeds``
        (:class:`~fusionrt.backends.base.RunsImages`). Interpolations the fused op lacks are pre-processed
        on the host (PIL) and run as :meth:`run` does.

        Example:
            >>> backend.run_images(feeds, [frame, None], manifest.image)["score"]  # doctest: +SKIP
        """
        if not fused(spec):
            return self.run({**feeds, PIXELS: preprocess_images(images, spec)[0]})
        height, width = spec.size
        return self._runner.run_images(feeds, PIXELS, images, spec.mean, spec.std, layout=spec.layout,
                                       channel_order=spec.channel_order, height=height, width=width)


def open_engine(root: Path, manifest: Manifest, device: str, precision: str) -> TensorRTBackend:
    """The bundle's ``precision`` engine for batches 1..:data:`MAX_BATCH` on ``device``: cached, or built and cached.

    The caller (:func:`fusionrt.backends.open_backend`) has checked
    :func:`~fusionrt.backends.tensorrt.unavailable_reason`.
    """
    index = device_index(device)
    if index != 0 and _C.cuda_device_properties(index)["name"] != _C.cuda_device_properties(0)["name"]:
        # The builder tunes for device 0; an engine runs only on the GPU model it was built for.
        raise ValueError(
            f"device {device!r} is a different GPU model from cuda:0, which engines are built for; "
            f"select it with CUDA_VISIBLE_DEVICES={index} and device='cuda'"
        )
    engine = build_engine(root, precision=precision, max_batch=MAX_BATCH, opt_batch=OPT_BATCH)
    return TensorRTBackend(engine, manifest, device)
