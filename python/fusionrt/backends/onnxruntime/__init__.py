"""The ONNX Runtime backend and all its parts.

* :mod:`.backend`: ``OnnxRuntimeBackend``, one ``InferenceSession`` (``sequential`` or ``parallel``),
* :mod:`.branches`: splitting a late / intermediate graph into its two backbone branches and the head,
* :mod:`.branched`: ``BranchedOnnxRuntimeBackend``, those branches on two threads (``branches``),
* :mod:`.execution`: the calibration that times the modes and records the fastest for ``auto``,
* :mod:`.fusions`: ONNX Runtime graph fusions every session turns off where this host runs them slower.

This module is the backend's entry in the table (:class:`OnnxRuntimeType`); it imports onnxruntime
only to open a session or to check a GPU device's provider.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ...bundle import Manifest
from ..base import Backend, BackendType
from ..options import EXECUTIONS, RunOptions


class OnnxRuntimeType(BackendType):
    """ONNX Runtime on the CPU (or CUDA with onnxruntime-gpu), in any of the execution modes."""

    name = "onnxruntime"
    title = "ONNX Runtime"
    executions = EXECUTIONS

    def unavailable(self, manifest: Manifest, options: RunOptions) -> str | None:
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed (pip install fusionrt[onnx])"
        if self.device(options) != "cpu":
            from .backend import provider_for

            try:
                provider_for(self.device(options))
            except ValueError as error:
                return str(error)
        return None

    def files(self, manifest: Manifest, options: RunOptions) -> tuple[str, ...]:
        # Every execution mode, the branch splitting included, reads the one graph of the precision
        # (and its weights file, in a lean bundle).
        variant = manifest.variants[options.precision]
        return (variant.onnxruntime_file, *variant.weights_files)

    def open(self, root: Path, manifest: Manifest, options: RunOptions) -> Backend:
        """Opens the variant's ONNX file in ``options.execution``; "auto" is the mode calibrated for this
        bundle and host (:func:`.execution.recorded_mode`), else sequential."""
        from .backend import OnnxRuntimeBackend
        from .branches import check_splittable
        from .execution import recorded_branch_threads, recorded_mode

        if options.execution == "branches":
            check_splittable(manifest.strategy)
        model = root / manifest.variants[options.precision].onnxruntime_file
        execution = options.execution
        if execution == "auto":
            execution = recorded_mode(root, options) or "sequential"
        if execution == "branches":
            from .branched import BranchedOnnxRuntimeBackend

            # The calibration's split of the cores by the branches' costs; without one an even split.
            split = recorded_branch_threads(root, options)
            return BranchedOnnxRuntimeBackend(model, manifest, self.device(options), options.threads, split)
        return OnnxRuntimeBackend(model, manifest, self.device(options), options.threads, execution)
