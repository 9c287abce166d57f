"""Backends: what runs a bundle's graph for a :class:`~fusionrt.session.Session`.

:data:`BACKENDS` maps each backend's name to its :class:`~fusionrt.backends.base.BackendType`, in the
order ``backend="auto"`` tries them: TensorRT when it and a GPU are usable, else ONNX Runtime, else
torch. Each backend lives in its own place with all its parts and says itself whether it can run here:

* :mod:`fusionrt.backends.tensorrt`: the C++ engine runtime, the engine builder and the engine cache,
* :mod:`fusionrt.backends.onnxruntime`: sessions, execution modes and their calibration, branch splitting,
* :mod:`fusionrt.backends.torch`: the ``torch.export`` program.

How to run travels as one :class:`~fusionrt.backends.options.RunOptions`.

Example:
    >>> from fusionrt import backends
    >>> list(backends.BACKENDS)
    ['tensorrt', 'onnxruntime', 'torch']
    >>> backends.choose(manifest, RunOptions(device="cpu"))  # doctest: +SKIP
    ('onnxruntime', 'tensorrt: TensorRT support is not built into this fusionrt ...')
"""

from __future__ import annotations

from pathlib import Path

from ..bundle import BundleError, Manifest
from .base import Backend, BackendType
from .onnxruntime import OnnxRuntimeType
from .options import EXECUTIONS, RunOptions
from .tensorrt import TensorRTType
from .torch import TorchType

__all__ = [
    "BACKENDS", "EXECUTIONS", "NAMES", "Backend", "BackendType", "RunOptions", "available", "backend_type",
    "choose", "files", "missing_files", "open_backend", "supports", "unavailable",
]

#: name -> backend type, in the order "auto" tries them.
BACKENDS: dict[str, BackendType] = {kind.name: kind for kind in (TensorRTType(), OnnxRuntimeType(), TorchType())}
NAMES = tuple(BACKENDS)


def backend_type(name: str) -> BackendType:
    """The table entry of backend ``name``; ValueError listing the backends for an unknown one."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}, expected 'auto' or one of {list(NAMES)}") from None


def supports(name: str, precision: str) -> bool:
    """Whether backend ``name`` runs bundle variants of ``precision`` (torch: fp32 only)."""
    return backend_type(name).precision_issue(precision) is None


def unavailable(name: str, manifest: Manifest, options: RunOptions = RunOptions()) -> str | None:
    """Why backend ``name`` cannot run ``manifest`` with ``options`` here, or None when it can.

    ``options.device`` None means the backend's default device.
    """
    kind = backend_type(name)
    return kind.check(manifest, options.replace(device=kind.device(options)))


def available(manifest: Manifest, options: RunOptions = RunOptions()) -> dict[str, str | None]:
    """``{backend: None if usable else why not}`` for every backend, in ``auto``'s order."""
    return {name: unavailable(name, manifest, options) for name in BACKENDS}


def choose(manifest: Manifest, options: RunOptions = RunOptions()) -> tuple[str, str]:
    """The backend ``auto`` picks and why (the reasons the ones before it were passed over)."""
    skipped = []
    for name, reason in available(manifest, options).items():
        if reason is None:
            return name, "; ".join(skipped) or "first choice"
        skipped.append(f"{name}: {reason}")
    raise RuntimeError("no backend can run this bundle here: " + "; ".join(skipped))


def files(name: str, manifest: Manifest, options: RunOptions) -> tuple[str, ...]:
    """The bundle files backend ``name`` reads to run ``options`` (see :meth:`BackendType.files`): what
    ``load`` hash-checks. Raises :class:`~fusionrt.bundle.BundleError` naming the files and the command
    that makes them when the bundle lacks some (one made for other runtimes)."""
    kind = backend_type(name)
    options = options.replace(device=kind.device(options))
    missing = kind.missing_files(manifest, options)
    if missing is not None:
        raise BundleError(f"cannot load the bundle for {name}: {missing}")
    return kind.files(manifest, options)


def missing_files(name: str, manifest: Manifest, options: RunOptions) -> str | None:
    """Which files backend ``name`` reads the bundle lacks (one made for other runtimes), and the command
    that makes a bundle with them; None when it has them all (see :meth:`BackendType.missing_files`)."""
    kind = backend_type(name)
    return kind.missing_files(manifest, options.replace(device=kind.device(options)))


def open_backend(name: str, root: Path, manifest: Manifest, options: RunOptions) -> Backend:
    """Opens backend ``name`` on the bundle at ``root`` (manifest validated, precision in its variants).

    Raises ValueError when the backend cannot run ``options``' precision or execution mode, and
    RuntimeError saying why when it cannot run here.
    """
    kind = backend_type(name)
    options = options.replace(device=kind.device(options))
    if options.execution not in kind.executions:
        owners = " / ".join(k.title for k in BACKENDS.values() if options.execution in k.executions)
        modes = " / ".join(repr(mode) for mode in kind.executions[1:])
        raise ValueError(f"execution {options.execution!r} is an {owners} mode; the {name} backend runs {modes}")
    issue = kind.precision_issue(options.precision)
    if issue is not None:
        raise ValueError(issue)
    reason = kind.check(manifest, options)
    if reason is not None:
        raise RuntimeError(f"the {name} backend cannot run here: {reason}")
    return kind.open(root, manifest, options)
