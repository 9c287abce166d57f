"""torch: a batch whose text or image is absent for every sample runs only the present branch and the head.

Late, intermediate and decision fusion programs split into a text branch, an image branch and the head
(:func:`~fusionrt.backends.torch_split.split_module`), each a ``GraphModule`` over the whole program's
parameters (no second copy of any weight); the rule, the absent branch's row and the run order are
:class:`fusionrt.absent.SplitAbsentPath`'s. The parts are built at the first absent batch. The stand-in
row is broadcast to the batch (a view, no copy): the head's ops take strided tensors.

Example:
    >>> path = TorchAbsentPath(backend, manifest)  # doctest: +SKIP
    >>> path.run(feeds, absent="image")  # doctest: +SKIP
    {'score': array([0.41], dtype=float32)}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..absent import HEAD, Part, SplitAbsentPath
from ..bundle import Manifest
from ..graph_io import IMAGE, TEXT
from .torch import TorchBackend
from .torch_split import split_module


class TorchAbsentPath(SplitAbsentPath):
    """Runs batches with one modality absent for every sample without that modality's backbone."""

    def __init__(self, backend: TorchBackend, manifest: Manifest) -> None:
        """``backend``: the opened torch backend (this path is its part: it reads the backend's module,
        and runs under its lock, as the module is not documented as safe to call from several threads)."""
        super().__init__(manifest, f"{manifest.torch_program} ({manifest.model_name})")
        self.backend = backend

    def split(self, absent: str) -> dict[str, Part]:
        parts = split_module(self.backend._module, self.manifest.strategy)
        return {TEXT: parts.text, IMAGE: parts.image, HEAD: parts.head}

    def adopt(self, value: np.ndarray) -> Any:
        return self.backend.adopt(value)

    def repeat(self, row: Any, batch: int) -> Any:
        return row.expand(batch, *row.shape[1:])

    def host(self, value: Any) -> np.ndarray:
        # contiguous: a decision model's absent branch score is the stand-in's broadcast view, which must
        # not reach the caller as an array whose rows share one element.
        return value.detach().cpu().contiguous().numpy()

    def run(self, feeds: dict[str, Any], absent: str) -> dict[str, np.ndarray] | None:
        with self.backend._lock, self.backend._torch.inference_mode():
            return super().run(feeds, absent)
