"""An absent modality costs nothing: which batches qualify, how a backend leaves a branch out, and which can.

A modality is absent for a whole batch when every row of its ``presence`` column is False (what
``Session.predict`` feeds for ``text=None`` / ``image=None``). Then late, intermediate and decision
fusion need only the present backbone and the head; the absent backbone's features are its learned
placeholder, the same for every sample. Early and hybrid fusion join both token streams in a joint
attention stack, whose input for absent text still carries the text backbone's (masked) tokens in
the exported graph, so there the whole graph runs and absence costs as much as presence.

Every backend that skips does it the same way (:class:`SplitAbsentPath`, the one home of the rule):
its graph is cut where the two backbones meet, into a text branch, an image branch and the head. The
absent branch's outputs are computed once, the first time that modality is absent for a whole batch:
the branch runs on two different random samples, both marked absent (one with the other modality
present, one without); the two rows must be bit-identical, which proves they depend on neither the
inputs nor the other modality's presence (otherwise that modality is never skipped and the whole graph
runs, as before). From then on a batch runs the present branch, that row repeated to the batch in
place of the absent branch, and the head: the head gets exactly the values the whole graph would give it.

Per backend (:data:`PATHS`), each building its parts at the first absent batch:

* **ONNX Runtime** (:mod:`fusionrt.backends.onnxruntime.absent`): the ONNX graph split by
  :func:`~fusionrt.backends.onnxruntime.branches.split_graph`, each part its own session.
* **torch** (:mod:`fusionrt.backends.torch_absent`): the exported program's FX graph cut the same way
  (:mod:`fusionrt.backends.torch_split`); each part a ``GraphModule`` holding only the nodes its
  outputs need, so the absent backbone's nodes are not in the one that runs. Parameters are shared with
  the whole program (no second copy).
* **TensorRT** (:mod:`fusionrt.backends.tensorrt.absent`): one engine per part, built from the ONNX
  split's graphs with the same builder and cache as the whole engine, keyed by part so they never
  replace it. Values pass between the engines through host memory (the runtime returns numpy), a copy
  the whole engine does not make; the engines are built at the first absent batch (minutes, once per
  GPU model, then cached in the bundle).

Backends without a path (and early / hybrid fusion, and batches with mixed presence, or both
modalities absent) run the whole graph, as before.

Example:
    >>> absent_modality(np.array([[True, False], [True, False]]))
    'image'
    >>> absent_modality(np.array([[True, False], [False, True]])) is None
    True
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .backends.onnxruntime.branches import SKIPPABLE, NotSplittableError
from .bundle import Manifest
from .feeds import host_array, random_feeds
from .graph_io import IMAGE, MODALITIES, PRESENCE, TEXT

log = logging.getLogger("fusionrt")

#: The key of the head among a split graph's parts (the branches' keys are the modalities).
HEAD = "head"


class AbsentPath(Protocol):
    """Runs a batch whose ``absent`` modality is absent for every sample without that modality's backbone."""

    def run(self, feeds: dict[str, Any], absent: str) -> dict[str, np.ndarray] | None:
        """The graph's outputs, or None when this graph cannot leave that branch out."""
        ...


class Part(Protocol):
    """One part of a split graph on some backend: reads the feeds it names, returns its outputs by name."""

    inputs: tuple[str, ...]

    def run(self, feeds: dict[str, Any]) -> dict[str, Any]:
        ...


@dataclass(frozen=True)
class Plan:
    """How to run a batch with one modality absent: the present branch, the head, the absent branch's rows."""

    present: Part
    head: Part
    rows: dict[str, Any]  # absent branch output name -> its (1, ...) row, in the backend's array type


def absent_modality(presence: Any) -> str | None:
    """The modality absent in every row of ``presence`` ``(batch, 2)``, or None (mixed, none or both absent)."""
    if presence is None:
        return None
    present = host_array(presence).any(axis=0)
    absent = [m for m, seen in zip(MODALITIES, present.tolist()) if not seen]
    return absent[0] if len(absent) == 1 else None


def other_modality(modality: str) -> str:
    """``"text"`` -> ``"image"`` and back."""
    return IMAGE if modality == TEXT else TEXT


class SplitAbsentPath:
    """The absent path of a backend whose graph splits into branches and head (see the module's docstring).

    A backend supplies :meth:`split` and, when its parts do not take and return numpy arrays, the three
    array hooks :meth:`adopt`, :meth:`repeat` and :meth:`host`. Plans are built once per modality, on the
    first call that needs one, and are safe to share between threads.
    """

    def __init__(self, manifest: Manifest, where: str) -> None:
        """``where``: the graph's file, for the log line saying a branch cannot be skipped."""
        self.manifest = manifest
        self.where = where
        self.output_names = tuple(manifest.outputs)
        self._plans: dict[str, Plan | None] = {}
        self._lock = threading.Lock()

    def split(self, absent: str) -> dict[str, Part]:
        """The graph's parts, ``{"text": branch, "image": branch, "head": head}``, built here for a batch
        with ``absent`` absent (the first such batch pays for it); raises
        :class:`~fusionrt.backends.onnxruntime.branches.NotSplittableError` when the graph has none."""
        raise NotImplementedError

    def adopt(self, value: np.ndarray) -> Any:
        """A host array as the parts' input type."""
        return value

    def repeat(self, row: Any, batch: int) -> Any:
        """``row`` ``(1, ...)`` as ``(batch, ...)``. The ONNX Runtime head takes contiguous inputs, so
        np.repeat (a broadcast view would be copied anyway)."""
        return np.repeat(row, batch, axis=0)

    def host(self, value: Any) -> np.ndarray:
        """A part's output as the numpy array ``Session.run`` returns."""
        return value

    def run(self, feeds: dict[str, Any], absent: str) -> dict[str, np.ndarray] | None:
        """The graph's outputs for ``feeds`` whose ``absent`` modality is absent in every sample, or None
        when this graph cannot leave that branch out (the caller then runs the whole graph)."""
        plan = self.plan(absent)
        if plan is None:
            return None
        batch = feeds[PRESENCE].shape[0]
        out = {**feeds, **plan.present.run(feeds)}
        out.update({name: self.repeat(row, batch) for name, row in plan.rows.items()})
        out.update(plan.head.run(out))
        return {name: self.host(out[name]) for name in self.output_names}

    def plan(self, absent: str) -> Plan | None:
        """The plan for ``absent`` (built at the first call), or None when that branch cannot be skipped."""
        if absent not in self._plans:
            with self._lock:
                if absent not in self._plans:
                    self._plans[absent] = self._build(absent)
        return self._plans[absent]

    def _build(self, absent: str) -> Plan | None:
        try:
            parts = self.split(absent)
        except NotSplittableError as error:
            log.info("fusionrt: %s does not split into branches (%s); it runs whole when %s is absent",
                     self.where, error, absent)
            return None
        rows = self._absent_rows(parts[absent], absent)
        if rows is None:
            log.info("fusionrt: %s's %s branch reads absent samples' inputs; it runs whole when %s is absent",
                     self.where, absent, absent)
            return None
        return Plan(parts[other_modality(absent)], parts[HEAD], rows)

    def _absent_rows(self, branch: Part, absent: str) -> dict[str, Any] | None:
        """The absent branch's output row for an absent sample, or None when it is not one row for all."""
        feeds = random_feeds(self.manifest, 2, np.random.default_rng(0))
        presence = np.zeros((2, len(MODALITIES)), bool)
        presence[0, MODALITIES.index(other_modality(absent))] = True  # row 0: the other one present; row 1: neither
        feeds[PRESENCE] = presence
        out = branch.run({name: self.adopt(value) for name, value in feeds.items()})
        values = {name: self.host(value) for name, value in out.items()}
        if not all(np.array_equal(v[0], v[1], equal_nan=v.dtype.kind == "f") for v in values.values()):
            return None
        return {name: value[:1] for name, value in out.items()}


def _onnxruntime(root: Path, manifest: Manifest, precision: str, backend: Any) -> AbsentPath:
    from .backends.onnxruntime.absent import OnnxRuntimeAbsentPath

    model = root / manifest.variants[precision].onnxruntime_file
    return OnnxRuntimeAbsentPath(model, manifest, backend.device, getattr(backend, "threads", None))


def _torch(root: Path, manifest: Manifest, precision: str, backend: Any) -> AbsentPath:
    from .backends.torch_absent import TorchAbsentPath

    return TorchAbsentPath(backend, manifest)


def _tensorrt(root: Path, manifest: Manifest, precision: str, backend: Any) -> AbsentPath:
    from .backends.tensorrt.absent import TensorRTAbsentPath

    return TensorRTAbsentPath(root, manifest, precision, backend)


#: backend name -> how to open its absent path, for a strategy whose branches can be left out
#: (:data:`~fusionrt.backends.onnxruntime.branches.SKIPPABLE`: late, intermediate, decision).
PATHS = {"onnxruntime": _onnxruntime, "torch": _torch, "tensorrt": _tensorrt}


def open_absent_path(root: Path, manifest: Manifest, precision: str, backend: Any) -> AbsentPath | None:
    """The absent-modality path of the opened ``backend`` for this bundle, or None where there is none
    (the backend or the fusion strategy cannot leave a branch out, or the graph has no presence input)."""
    opener = PATHS.get(backend.name)
    if opener is None or PRESENCE not in manifest.inputs or manifest.strategy not in SKIPPABLE:
        return None
    return opener(root, manifest, precision, backend)
