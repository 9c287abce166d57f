"""What every backend provides: :class:`Backend` (an opened graph) and :class:`BackendType` (its table entry).

A backend type is cheap to import: it imports its framework only in :meth:`BackendType.open` (and
where a module lookup cannot answer :meth:`BackendType.unavailable`), so the table in
:mod:`fusionrt.backends` can ask every backend why it cannot run without loading torch or TensorRT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from ..bundle import PRECISIONS, ImageSpec, Manifest

#: The runtimes ``fusionrt pack`` makes device copies for (the torch program is the training host's).
PACK_TARGETS = ("tensorrt", "onnxruntime")
from .options import RunOptions, parse_device


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


class RunsImages(Protocol):
    """What a backend that makes the graph's image input on its own device adds to :class:`Backend`.

    :meth:`Session.predict <fusionrt.session.Session.predict>` hands such a backend the decoded frames
    instead of the pre-processed float batch, so a frame crosses to the device once, as uint8; a backend
    without ``run_images`` gets host feeds from :func:`fusionrt.preprocessing.raw_feeds`. The TensorRT
    backend has it (the CUDA pre-processing kernel writes into the engine's input buffer).
    """

    def run_images(self, feeds: dict[str, np.ndarray], images: list[np.ndarray | None],
                   spec: ImageSpec) -> dict[str, np.ndarray]:
        """Runs the graph on ``feeds`` (every input but the image, validated) and the image input made
        from ``images`` (decoded HWC uint8 RGB arrays; None: absent, zeros) as ``spec`` says: what
        :func:`~fusionrt.preprocessing.preprocess_images` would give, within its 1/255; thread-safe."""


class BackendType:
    """One entry of the backend table: what a backend runs, whether it can run here, and how it opens.

    Subclasses set the class attributes and implement :meth:`unavailable` and :meth:`open`.
    """

    name: ClassVar[str]
    #: How messages name the runtime ("ONNX Runtime").
    title: ClassVar[str]
    #: The device it runs on when the options name none.
    default_device: ClassVar[str] = "cpu"
    #: The bundle variants it can run.
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS
    #: The execution modes it runs (see :data:`fusionrt.backends.options.EXECUTIONS`).
    executions: ClassVar[tuple[str, ...]] = ("auto", "sequential")
    #: The device kinds it runs on (see :data:`fusionrt.backends.options.DEVICE_KINDS`).
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")

    def device(self, options: RunOptions) -> str:
        """The device ``options`` run on with this backend."""
        return options.device or self.default_device

    def precision_issue(self, precision: str) -> str | None:
        """Why this backend cannot run ``precision``, or None when it can."""
        if precision in self.precisions:
            return None
        return f"the {self.name} backend runs {' / '.join(self.precisions)} only, got precision {precision!r}"

    def check(self, manifest: Manifest, options: RunOptions) -> str | None:
        """Why this backend cannot run ``manifest`` with ``options`` here, or None when it can: a device
        kind it does not run on, else :meth:`unavailable`. ``options.device`` is resolved (never None).

        What ``auto`` and opening ask, so a backend that cannot use the device is passed over (``auto``)
        or refused with the reason (an explicit backend), never opened to fail at the first call.
        """
        kind, _ = parse_device(options.device)
        if kind not in self.devices:
            return (
                f"the {self.name} backend runs on {' / '.join(repr(d) for d in self.devices)} devices, "
                f"got device {options.device!r}"
            )
        if manifest.variants and options.precision not in manifest.variants:  # before asking for its files
            return f"the bundle has no {options.precision!r} variant; it has {sorted(manifest.variants)}"
        return self.missing_files(manifest, options) or self.unavailable(manifest, options)

    def missing_files(self, manifest: Manifest, options: RunOptions) -> str | None:
        """Which of the files :meth:`open` reads a lean bundle (one not made for this runtime) lacks, and
        the command that makes a bundle with them; None when it has them all."""
        if not manifest.files:
            return None  # not read from a bundle (read_manifest refuses an empty list): nothing to compare
        missing = [name for name in self.files(manifest, options) if name not in manifest.files]
        if not missing:
            return None
        make = (f"`fusionrt pack FULL_BUNDLE --for {self.name} --out DIR` makes a copy for it from a full bundle, "
                if self.name in PACK_TARGETS else "")
        return (
            f"the bundle serves {' / '.join(manifest.targets) or 'no runtime'} (manifest.targets), not {self.name}: "
            f"it lacks {', '.join(missing)}; {make}`python -m training.export ... --targets {self.name}` "
            "exports one"
        )

    def unavailable(self, manifest: Manifest, options: RunOptions) -> str | None:
        """Why this backend cannot run ``manifest`` with ``options`` in this process, or None when it can.

        ``options.device`` is resolved (never None) and of a kind in :attr:`devices`; whether that device
        exists here is this method's question. Reasons name what is missing and how to get it.
        """
        raise NotImplementedError

    def open(self, root: Path, manifest: Manifest, options: RunOptions) -> Backend:
        """Opens the bundle at ``root`` (manifest validated; precision, execution and availability checked)."""
        raise NotImplementedError

    def files(self, manifest: Manifest, options: RunOptions) -> tuple[str, ...]:
        """The bundle files :meth:`open` reads for ``options``: what ``load`` hash-checks before opening
        (the other runtimes' graphs are left unread, which is most of a cold start)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<backend {self.name}>"
