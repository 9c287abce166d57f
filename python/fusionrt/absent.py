"""An absent modality costs nothing: which batches qualify, and which backend can leave a branch out.

A modality is absent for a whole batch when every row of its ``presence`` column is False (what
``Session.predict`` feeds for ``text=None`` / ``image=None``). Then late, intermediate and decision
fusion need only the present backbone and the head; the absent backbone's features are its learned
placeholder, the same for every sample. Early and hybrid fusion join both token streams in a joint
attention stack, whose input for absent text still carries the text backbone's (masked) tokens in
the exported graph, so there the whole graph runs and absence costs as much as presence.

Per backend (:data:`PATHS`):

* **ONNX Runtime**: :class:`~fusionrt.backends.onnxruntime.absent.OnnxRuntimeAbsentPath` runs the
  present branch graph and the head graph (the same split the ``branches`` execution mode uses).
* **torch**: no path yet: the ``model.pt2`` program takes every input and runs both backbones.
* **TensorRT**: no path yet: an engine built from the whole graph runs both backbones; a per-branch
  pair of engines (the ONNX Runtime split's branch and head graphs, built like the whole graph) is how
  it would skip one.

Backends without a path, and batches with mixed presence, run the whole graph, as before.

Example:
    >>> absent_modality(np.array([[True, False], [True, False]]))
    'image'
    >>> absent_modality(np.array([[True, False], [False, True]])) is None
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .bundle import Manifest
from .feeds import host_array
from .graph_io import MODALITIES


class AbsentPath(Protocol):
    """Runs a batch whose ``absent`` modality is absent for every sample without that modality's backbone."""

    def run(self, feeds: dict[str, Any], absent: str) -> dict[str, np.ndarray] | None:
        """The graph's outputs, or None when this graph cannot leave that branch out."""
        ...


def absent_modality(presence: Any) -> str | None:
    """The modality absent in every row of ``presence`` ``(batch, 2)``, or None (mixed, none or both absent)."""
    if presence is None:
        return None
    present = host_array(presence).any(axis=0)
    absent = [m for m, seen in zip(MODALITIES, present.tolist()) if not seen]
    return absent[0] if len(absent) == 1 else None


def _onnxruntime(root: Path, manifest: Manifest, precision: str, backend: Any) -> AbsentPath | None:
    from .backends.onnxruntime.absent import OnnxRuntimeAbsentPath

    if not OnnxRuntimeAbsentPath.supports(manifest.strategy):
        return None
    model = root / manifest.variants[precision].onnxruntime_file
    return OnnxRuntimeAbsentPath(model, manifest, backend.device, getattr(backend, "threads", None))


#: backend name -> how to open its absent path (None: the strategy cannot leave a branch out).
PATHS = {"onnxruntime": _onnxruntime}


def open_absent_path(root: Path, manifest: Manifest, precision: str, backend: Any) -> AbsentPath | None:
    """The absent-modality path of the opened ``backend`` for this bundle, or None where there is none
    (the backend or the fusion strategy cannot leave a branch out, or the graph has no presence input)."""
    from .graph_io import PRESENCE

    opener = PATHS.get(backend.name)
    if opener is None or PRESENCE not in manifest.inputs:
        return None
    return opener(root, manifest, precision, backend)
