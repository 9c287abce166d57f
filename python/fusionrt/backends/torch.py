"""The torch backend: the bundle's ``torch.export`` program (``model.pt2``) on CPU or GPU.

:class:`TorchType` is its entry in the backend table; torch is imported only when the backend opens
(or to ask whether a CUDA device exists). The program is exported in fp32, so this backend runs the
fp32 variant only. On the ``meta`` device the program loads with every parameter, buffer and constant
moved there (how tests check the device move without a GPU), but cannot run: meta tensors have no values.
A lean bundle's program carries no weights: they are read from the fp32 weights file the ONNX graphs
share (:mod:`.torch_state`) before the program moves to its device.

Calls are serialised with a lock: the exported module is not documented as safe to call from several
threads at once, and each call already uses torch's intra-op threads (or the GPU) fully.

Example:
    >>> backend = TorchBackend(Path("bundle/model.pt2"), ("score",), "cpu")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..bundle import Manifest
from .base import Backend, BackendType
from .options import RunOptions, parse_device
from .torch_state import TABLE_NAME, fill_state


class TorchType(BackendType):
    """torch on CPU or GPU: the bundle's ``torch.export`` program, fp32 only."""

    name = "torch"
    title = "torch"
    precisions = ("fp32",)
    devices = ("cpu", "cuda", "meta")

    def precision_issue(self, precision: str) -> str | None:
        if precision in self.precisions:
            return None
        return (
            f"the torch backend runs model.pt2 in fp32, got precision {precision!r}; "
            "use backend='onnxruntime' or 'tensorrt' for the fp16 / int8 variants"
        )

    def unavailable(self, manifest: Manifest, options: RunOptions) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install fusionrt[train])"
        if manifest.torch_program is None:
            return "the bundle has no torch program (model.pt2)"
        kind, index = parse_device(options.device)
        if kind == "cuda":
            return cuda_issue(options.device, index or 0)
        return None

    def files(self, manifest: Manifest, options: RunOptions) -> tuple[str, ...]:
        if manifest.torch_program is None:
            return ()
        # A lean bundle's program carries no weights: they are in the fp32 weights file.
        weights = manifest.variants["fp32"].weights
        return (manifest.torch_program,) + ((weights,) if weights else ())

    def open(self, root: Path, manifest: Manifest, options: RunOptions) -> Backend:
        return TorchBackend(root / manifest.torch_program, tuple(manifest.outputs), self.device(options),
                            weights=manifest.variants["fp32"].weights)


def cuda_issue(device: str, index: int) -> str | None:
    """Why torch cannot use CUDA device ``index`` here (no CUDA build, no GPU, no such index), or None."""
    torch = require("torch")
    if not torch.cuda.is_available():
        build = f"torch {torch.__version__} is built without CUDA" if torch.version.cuda is None else (
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable CUDA device (no GPU or no driver)"
        )
        return f"device {device!r} needs a CUDA device: {build}"
    count = torch.cuda.device_count()
    if index >= count:
        return f"device {device!r} does not exist: torch sees {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
    return None


class TorchBackend:
    """Runs an exported program under ``torch.inference_mode``."""

    name = "torch"

    def __init__(self, program: Path, output_names: tuple[str, ...], device: str, weights: str | None = None) -> None:
        """Loads ``program``; ``weights`` is the bundle's fp32 weights file, where a lean bundle's program
        finds its tensors (:mod:`.torch_state`)."""
        torch = require("torch")
        # torch.export does not import its passes submodule itself; without this import, moving the
        # program off the CPU ended in AttributeError.
        import torch.export.passes

        self._torch = torch
        require("fusionrt.ops")  # registers fusionrt::* so programs using the fused ops deserialise
        self.device = device
        self._device = torch.device(device)
        extra = {TABLE_NAME: ""}
        with warnings.catch_warnings():
            # A lean program's placeholders are broadcast views, which torch's loader warns about.
            warnings.filterwarnings("ignore", message="No complete tensor found")
            exported = torch.export.load(str(program), extra_files=extra)
        fill_state(torch, exported, extra[TABLE_NAME], program.parent, weights, program.name)
        if self._device.type != "cpu":
            # Moves constants baked into the graph too, which Module.to() would miss.
            exported = torch.export.passes.move_to_device_pass(exported, self._device)
        # Exported programs take positional arguments only, in the forward's order (which the
        # manifest's sorted JSON keys do not keep).
        self._input_names = tuple(exported.graph_signature.user_inputs)
        self._module = exported.module()
        self.output_names = output_names
        self._lock = threading.Lock()

    def dtype(self, name: str) -> Any:
        """The torch dtype spelled ``name`` in numpy ("float32" -> torch.float32, "bool" -> torch.bool)."""
        return getattr(self._torch, name)

    def adopt(self, value: Any) -> Any:
        """``value`` as a tensor on the backend's device: numpy and DLPack without a copy where it is already there.

        Numpy arrays with negative strides are copied (torch tensors cannot have them); other strides
        pass through, as the program takes strided tensors.
        """
        torch = self._torch
        if self._device.type == "meta":
            raise RuntimeError(
                "a torch session on the meta device holds shapes, not values, so it cannot run; "
                "load it on 'cpu' or 'cuda' to run it"
            )
        if isinstance(value, np.ndarray):
            tensor = torch.from_numpy(value if min(value.strides, default=0) >= 0 else np.ascontiguousarray(value))
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
        with self._lock, self._torch.inference_mode():
            out = self._module(*args)
        return {name: out[name].detach().cpu().numpy() for name in self.output_names if name in out}
