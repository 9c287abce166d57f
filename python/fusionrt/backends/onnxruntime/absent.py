"""ONNX Runtime: a batch whose text or image is absent for every sample runs only the present branch and the head.

Late, intermediate and decision fusion graphs split into a text branch, an image branch and the head
(:func:`~fusionrt.backends.onnxruntime.branches.split_graph`). A branch's outputs for an absent sample
are its learned placeholder (and, for decision fusion, that placeholder's branch prediction): the same
row whatever the sample's inputs. So a batch with one modality absent throughout needs no work on that
backbone: the absent branch's outputs are that row, repeated, and the head gets exactly the values the
whole graph would have given it.

The row is computed once, the first time a modality is absent for a whole batch: the absent branch runs
on two different random samples, both marked absent (one with the other modality present, one without);
the two rows must be bit-identical, which proves they depend on neither the inputs nor the other
modality's presence. Otherwise (a graph whose branch reads an absent sample's inputs) that modality is
never skipped and the whole graph runs, as before. The branch sessions are built at that first call too
(the whole graph's session is not reused: ONNX Runtime sessions share no weights), so a process that
never sees an absent modality pays nothing, and one that does holds a second copy of the present
branch's and the head's weights.

Example:
    >>> path = OnnxRuntimeAbsentPath(Path("bundle/model.onnx"), manifest, "cpu", threads=None)  # doctest: +SKIP
    >>> path.run(feeds, absent="image")  # doctest: +SKIP
    {'score': array([0.41], dtype=float32)}
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..._optional import require
from ...bundle import Manifest
from ...feeds import random_feeds
from ...graph_io import IMAGE, MODALITIES, PRESENCE, TEXT
from .backend import physical_cores
from .branched import _Part
from .branches import SKIPPABLE, split_graph

log = logging.getLogger("fusionrt")


@dataclass(frozen=True)
class _Plan:
    """How to run a batch with one modality absent: the present branch, the head, the absent branch's rows."""

    present: _Part
    head: _Part
    rows: dict[str, np.ndarray]  # absent branch output name -> its (1, ...) row


class OnnxRuntimeAbsentPath:
    """Runs batches with one modality absent for every sample without that modality's backbone."""

    def __init__(self, model: Path, manifest: Manifest, device: str, threads: int | None) -> None:
        """``model``: the variant's ONNX file (its external weights beside it); nothing is read until the
        first absent batch."""
        self.model = model
        self.manifest = manifest
        self.device = device
        self.threads = threads or physical_cores()
        self.output_names = tuple(manifest.outputs)
        self._plans: dict[str, _Plan | None] = {}
        self._lock = threading.Lock()

    @staticmethod
    def supports(strategy: str) -> bool:
        """Whether ``strategy``'s graph has branches that can be left out (late, intermediate, decision)."""
        return strategy in SKIPPABLE

    def run(self, feeds: dict[str, Any], absent: str) -> dict[str, np.ndarray] | None:
        """The graph's outputs for ``feeds`` whose ``absent`` modality is absent in every sample, or None
        when this graph cannot leave that branch out (the caller then runs the whole graph)."""
        plan = self._plans.get(absent)
        if absent not in self._plans:
            with self._lock:
                if absent not in self._plans:
                    self._plans[absent] = self._plan(absent)
                plan = self._plans[absent]
        if plan is None:
            return None
        batch = feeds[PRESENCE].shape[0]
        present = plan.present.run(feeds)
        # The head takes contiguous inputs; np.repeat makes them (a broadcast view would be copied anyway).
        stand_in = {name: np.repeat(row, batch, axis=0) for name, row in plan.rows.items()}
        out = {**present, **stand_in}
        out.update(plan.head.run({**feeds, **out}))
        return {name: out[name] for name in self.output_names}

    def _plan(self, absent: str) -> _Plan | None:
        onnx = require("onnx")
        graphs = split_graph(onnx.load(str(self.model)), self.manifest.strategy, branch_outputs=True)
        present_graph, absent_graph = (graphs.image, graphs.text) if absent == TEXT else (graphs.text, graphs.image)
        rows = self._absent_rows(_Part(absent_graph, self.threads, self.device, spinning=True), absent)
        if rows is None:
            log.info("fusionrt: %s's %s branch reads absent samples' inputs; it runs whole when %s is absent",
                     self.model, absent, absent)
            return None
        # The head is a few small ops: one thread, no pool whose spinning would take the cores from the
        # present branch's threads (or from the next call's branch) on a small machine.
        head = _Part(graphs.head, 1, self.device)
        return _Plan(_Part(present_graph, self.threads, self.device, spinning=True), head, rows)

    def _absent_rows(self, branch: _Part, absent: str) -> dict[str, np.ndarray] | None:
        """The absent branch's output row for an absent sample, or None when it is not one row for all."""
        feeds = random_feeds(self.manifest, 2, np.random.default_rng(0))
        other = MODALITIES.index(IMAGE if absent == TEXT else TEXT)
        presence = np.zeros((2, len(MODALITIES)), bool)
        presence[0, other] = True  # row 0: the other modality present; row 1: neither
        feeds[PRESENCE] = presence
        out = branch.run(feeds)
        if not all(np.array_equal(value[0], value[1], equal_nan=value.dtype.kind == "f") for value in out.values()):
            return None
        return {name: value[:1].copy() for name, value in out.items()}
