"""The torch backend: the bundle's ``torch.export`` program (``model.pt2``) on CPU or GPU.

Calls are serialised with a lock: the exported module is not documented as safe to call from
several threads at once, and each call already uses torch's intra-op threads (or the GPU) fully.

Example:
    >>> backend = TorchBackend(Path("bundle/model.pt2"), ("score",), "cpu")  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require

torch = require("torch")


class TorchBackend:
    """Runs an exported program under ``torch.inference_mode``."""

    name = "torch"

    def __init__(self, program: Path, output_names: tuple[str, ...], device: str) -> None:
        require("fusionrt.ops")  # registers fusionrt::* so programs using the fused ops deserialise
        self.device = device
        self._device = torch.device(device)
        exported = torch.export.load(str(program))
        if self._device.type != "cpu":
            # Moves constants baked into the graph too, which Module.to() would miss.
            exported = torch.export.passes.move_to_device_pass(exported, self._device)
        # Exported programs take positional arguments only, in the forward's order (which the
        # manifest's sorted JSON keys do not keep).
        self._input_names = tuple(exported.graph_signature.user_inputs)
        self._module = exported.module()
        self.output_names = output_names
        self._lock = threading.Lock()

    @staticmethod
    def dtype(name: str) -> Any:
        """The torch dtype spelled ``name`` in numpy ("float32" -> torch.float32, "bool" -> torch.bool)."""
        return getattr(torch, name)

    def adopt(self, value: Any) -> Any:
        """``value`` as a tensor on the backend's device: numpy and DLPack without a copy where it is already there."""
        if isinstance(value, np.ndarray):
            tensor = torch.from_numpy(value)
        elif isinstance(value, torch.Tensor):
            tensor = value
        elif hasattr(value, "__dlpack__"):
            tensor = torch.from_dlpack(value)
        else:
            tensor = torch.as_tensor(np.asarray(value))
        return tensor if tensor.device == self._device else tensor.to(self._device)

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """Runs the program on ``feeds`` (the model's forward arguments by name); returns numpy outputs."""
        args = [feeds[name] for name in self._input_names]
        with self._lock, torch.inference_mode():
            out = self._module(*args)
        return {name: out[name].detach().cpu().numpy() for name in self.output_names if name in out}
