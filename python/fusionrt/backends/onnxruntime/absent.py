"""ONNX Runtime: a batch whose text or image is absent for every sample runs only the present branch and the head.

Late, intermediate and decision fusion graphs split into a text branch, an image branch and the head
(:func:`~fusionrt.backends.onnxruntime.branches.split_graph`), each its own ``InferenceSession``; the
rule, the absent branch's row and the run order are :class:`fusionrt.absent.SplitAbsentPath`'s. The
sessions are built at the first absent batch (the whole graph's session is not reused: ONNX Runtime
sessions share no weights), so a process that never sees an absent modality pays nothing, and one that
does holds a second copy of the present branch's and the head's weights.

Example:
    >>> path = OnnxRuntimeAbsentPath(Path("bundle/model.onnx"), manifest, "cpu", threads=None)  # doctest: +SKIP
    >>> path.run(feeds, absent="image")  # doctest: +SKIP
    {'score': array([0.41], dtype=float32)}
"""

from __future__ import annotations

from pathlib import Path

from ..._optional import require
from ...absent import HEAD, Part, SplitAbsentPath
from ...bundle import Manifest
from ...graph_io import IMAGE, TEXT
from .backend import physical_cores
from .branched import _Part
from .branches import split_graph


class OnnxRuntimeAbsentPath(SplitAbsentPath):
    """Runs batches with one modality absent for every sample without that modality's backbone."""

    def __init__(self, model: Path, manifest: Manifest, device: str, threads: int | None) -> None:
        """``model``: the variant's ONNX file (its external weights beside it); nothing is read until the
        first absent batch."""
        super().__init__(manifest, str(model))
        self.model = model
        self.device = device
        self.threads = threads or physical_cores()

    def split(self, absent: str) -> dict[str, Part]:
        onnx = require("onnx")
        graphs = split_graph(onnx.load(str(self.model)), self.manifest.strategy, branch_outputs=True)
        # The head is a few small ops: one thread, no pool whose spinning would take the cores from the
        # present branch's threads (or from the next call's branch) on a small machine.
        return {TEXT: _Part(graphs.text, self.threads, self.device, spinning=True),
                IMAGE: _Part(graphs.image, self.threads, self.device, spinning=True),
                HEAD: _Part(graphs.head, 1, self.device)}
