"""ONNX Runtime ``execution="branches"``: a late / intermediate graph's two backbones on two threads.

The graph is split (:func:`~fusionrt.backends.onnxruntime.branches.split_graph`) into a text branch,
an image branch and the head, each its own ``InferenceSession``. A call runs the image branch on a
persistent worker thread while the calling thread runs the text branch (one thread hand-off per call,
not two), then the head. The cores are split between the two branch sessions, never shared
(:func:`branch_threads`): in proportion to each branch's cost when it is known (``choose_execution``
measures it and records the split), else evenly. The intra-op pools do not spin, so a branch that
finishes first hands its cores back at once instead of spinning on them while the other branch runs.
The head is a few small ops on the calling thread (no pool that could spin into the next call's
branches). Safe to call from several threads: the pool has 2 workers, so two callers can both have
their image branch running, and ``InferenceSession.run`` is thread-safe.

Example:
    >>> backend = BranchedOnnxRuntimeBackend(Path("bundle/model.onnx"), manifest, "cpu", threads=None)  # doctest: +SKIP
    >>> backend.run({"input_ids": ids, "attention_mask": mask, "image": image, "presence": presence})  # doctest: +SKIP
"""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..._optional import require
from ...bundle import BundleError, Manifest
from .backend import OnnxRuntimeBackend, check_graph, inference_session, physical_cores, session_options
from .branches import split_graph


def branch_threads(threads: int, costs: tuple[float, float] | None = None) -> tuple[int, int]:
    """Intra-op threads of the (text, image) branch sessions on ``threads`` cores: together never more
    than ``threads`` (one each on a single core, which they then take turns on), each at least one, split
    in proportion to ``costs`` (the branches' latencies alone) or evenly, the odd core to the image branch.

    Example:
        >>> branch_threads(8), branch_threads(8, costs=(30.0, 10.0)), branch_threads(2, costs=(30.0, 1.0))
        ((4, 4), (6, 2), (1, 1))
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if threads == 1:
        return 1, 1
    if costs is None:
        text = threads // 2
    else:
        text_cost, image_cost = costs
        if not (text_cost > 0 and image_cost > 0):
            raise ValueError(f"branch costs must be > 0, got {costs}")
        text = round(threads * text_cost / (text_cost + image_cost))
    text = min(max(text, 1), threads - 1)
    return text, threads - text


class _Part:
    """One part of the split graph as an ``InferenceSession``, with its input and output names resolved."""

    def __init__(self, graph: Any, threads: int, device: str, spinning: bool = False) -> None:
        """``spinning`` False (sessions that share the cores with another running part): see
        :func:`~.backend.session_options`."""
        self.threads = threads
        self.session = inference_session(graph.SerializeToString(), session_options(threads, spinning=spinning), device)
        self.inputs = tuple(i.name for i in self.session.get_inputs())
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """Runs the part on the feeds it reads (others in ``feeds`` are ignored)."""
        return dict(zip(self.outputs, self.session.run(self.outputs, {n: feeds[n] for n in self.inputs})))


class BranchedOnnxRuntimeBackend:
    """Runs a late / intermediate fusion ONNX file as two concurrent branch sessions and a head session."""

    name = "onnxruntime"
    execution = "branches"
    # Same host-memory rules as the single-session backend (adopt reads only self.device).
    dtype = staticmethod(OnnxRuntimeBackend.dtype)
    adopt = OnnxRuntimeBackend.adopt

    def __init__(
        self, model: Path, manifest: Manifest, device: str, threads: int | None,
        split: tuple[int, int] | None = None,
    ) -> None:
        """``split``: the (text, image) branch sessions' intra-op threads, as :func:`branch_threads`
        makes them from the branches' costs (``choose_execution`` records it); None splits evenly."""
        onnx = require("onnx")
        check_graph(model, manifest)
        graphs = split_graph(onnx.load(str(model)), manifest.strategy)
        self.device = device
        self.threads = threads or physical_cores()
        text_threads, image_threads = split or branch_threads(self.threads)
        self._text = _Part(graphs.text, text_threads, device)
        self._image = _Part(graphs.image, image_threads, device)
        self._head = _Part(graphs.head, 1, device)
        self.output_names = tuple(self._head.outputs)
        if set(self.output_names) != set(manifest.outputs):
            raise BundleError(f"{model.name} has outputs {list(self.output_names)}, expected {list(manifest.outputs)}")
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fusionrt-branch")
        weakref.finalize(self, self._pool.shutdown, wait=False)

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """Runs both branches concurrently, then the head; returns every graph output by name."""
        image = self._pool.submit(self._image.run, feeds)
        features = {**feeds, **self._text.run(feeds), **image.result()}
        return self._head.run(features)
