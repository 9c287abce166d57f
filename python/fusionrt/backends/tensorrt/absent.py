"""TensorRT: a batch whose text or image is absent for every sample runs only the present branch's engine and the head's.

An engine built from the whole graph runs both backbones whatever ``presence`` says, so the absent
path runs one engine per part of the ONNX split (:func:`~fusionrt.backends.onnxruntime.branches.split_graph`
of the graph the whole engine is built from): the text branch, the image branch and the head. The rule,
the absent branch's row and the run order are :class:`fusionrt.absent.SplitAbsentPath`'s, as on ONNX
Runtime and torch, which test them on this machine's CPU; this layer only builds and runs the engines.

* **Build**: the part engines are built at the first absent batch with the whole engine's builder
  settings (:func:`~.engine_builder.plan_build`: graph, precision flags, plugins, batch range, timing
  cache), each part's inputs (its boundary features) getting the same batch profile. That takes about
  as long as the whole engine's build, once per GPU model, TensorRT and bundle.
* **Cache**: each part's engines live in ``engines/parts/<part>/`` (:class:`PartEngineCache`), keyed
  like the whole engine (:class:`~.engine_cache.EngineKey`) by the part graph's own hash (weights
  included), so a part engine is never taken for a stale version of the whole one, nor the reverse.
  TensorRT's timing cache is the whole engine's (same GPU and TensorRT).
* **Run**: the present branch's engine, the absent branch's row repeated on the host, the head's
  engine. Values pass between the engines through host memory (the runtime returns numpy), a copy the
  whole engine does not make: on a GPU the gain is the absent backbone's kernels minus that copy.

A graph that does not split (e.g. a quantized graph whose boundary is not the fusion op's inputs) runs
whole, as before.

Example:
    >>> engines = build_part_engines(Path("bundle"), manifest, "fp16", max_batch=8, opt_batch=1)  # doctest: +SKIP
    >>> sorted(engines)  # doctest: +SKIP
    ['head', 'image', 'text']
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ... import _C, build_info
from ..._optional import require
from ...absent import HEAD, Part, SplitAbsentPath
from ...bundle import BundleError, Manifest, TensorSpec
from ...graph_io import BATCH, IMAGE, TEXT
from ..onnxruntime.branches import split_graph
from .engine_cache import EngineCache, EngineKey

#: The parts of a split graph, each one engine.
PARTS = (TEXT, IMAGE, HEAD)


class PartEngineCache(EngineCache):
    """The engines of one ``part`` of the bundle's split graph: ``engines/parts/<part>/``, apart from
    the whole engine's folder, sharing its timing cache."""

    def __init__(self, root: str | Path, part: str) -> None:
        if part not in PARTS:
            raise ValueError(f"part is {part!r}, expected one of {list(PARTS)}")
        super().__init__(root)
        self.whole_folder = self.folder
        self.folder = self.folder / "parts" / part

    def timing_cache_path(self, key: EngineKey) -> Path:
        return self.whole_folder / key.timing_cache_name


def part_graphs(model: Any, strategy: str) -> dict[str, Any]:
    """``{part: onnx.ModelProto}`` of the ``strategy`` graph ``model``: what the absent path builds engines of."""
    graphs = split_graph(model, strategy, branch_outputs=True)
    return {TEXT: graphs.text, IMAGE: graphs.image, HEAD: graphs.head}


def part_inputs(graph: Any) -> dict[str, TensorSpec]:
    """The inputs of a part graph as :class:`~fusionrt.bundle.TensorSpec` s, the first dim the batch, for
    its engine's optimisation profile (:func:`~.engine_builder.profile_shapes`)."""
    onnx = require("onnx")
    specs = {}
    for value in graph.graph.input:
        dims = value.type.tensor_type.shape.dim
        sizes = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if not sizes or any(size is None or size < 1 for size in sizes[1:]):
            raise BundleError(f"part input {value.name!r} has dims {sizes}, expected (batch, fixed sizes...)")
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)).name
        specs[value.name] = TensorSpec(dtype, [BATCH, *sizes[1:]])
    return specs


def build_part_engines(root: Path, manifest: Manifest, precision: str, max_batch: int, opt_batch: int) -> dict[str, Path]:
    """``{part: engine path}`` for the ``precision`` engine's split graph on this GPU: cached, or built and cached.

    Raises :class:`~fusionrt.backends.onnxruntime.branches.NotSplittableError` for a graph that does not
    split, and what :func:`~.engine_builder.build_engine` raises for a failed build.
    """
    from .engine_builder import PLUGIN_LIBRARY, cached_or_built, device_facts, plan_build, profile_shapes, release_version

    trt, onnx = require("tensorrt"), require("onnx")
    trt_version = release_version(trt.__version__)
    plan = plan_build(manifest, precision, trt_version, plugins=PLUGIN_LIBRARY.is_file())
    # The whole engine's build, which opened this backend, checked this graph's external data.
    graphs = part_graphs(onnx.load(str(root / plan.onnx)), manifest.strategy)
    engines = {}
    for part, graph in graphs.items():
        data = graph.SerializeToString()
        key = EngineKey.for_gpu(device_facts(), trt_version, precision, hashlib.sha256(data).hexdigest(), max_batch,
                                opt_batch, fusionrt_version=build_info()["version"])
        # TensorRT's parser reads a file: written on every first absent batch (a cache hit too), once per process.
        with tempfile.TemporaryDirectory() as folder:
            onnx_file = Path(folder) / f"{part}.onnx"
            onnx_file.write_bytes(data)
            engines[part] = cached_or_built(trt, PartEngineCache(root, part), key, onnx_file, plan,
                                            profile_shapes(part_inputs(graph), opt_batch, max_batch),
                                            f"{plan.onnx} ({part} part)")
    return engines


class EnginePart:
    """One part's engine, run by fusionrt's C++ runtime (CUDA graphs on)."""

    def __init__(self, engine: Path, device: int) -> None:
        self._runner = _C.EngineRunner(engine, device=device, cuda_graphs=True)
        self.inputs = tuple(t["name"] for t in self._runner.inputs)

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """Runs the engine on the feeds it reads (others in ``feeds`` are ignored); numpy outputs."""
        return self._runner.run({name: feeds[name] for name in self.inputs})


class TensorRTAbsentPath(SplitAbsentPath):
    """Runs batches with one modality absent for every sample without that modality's backbone engine."""

    def __init__(self, root: Path, manifest: Manifest, precision: str, backend: Any) -> None:
        """``backend``: the opened TensorRT backend (its device; its batch range is this module's too)."""
        super().__init__(manifest, f"{root} ({precision} engine)")
        self.root = root
        self.precision = precision
        self.device = backend.device

    def split(self, absent: str) -> dict[str, Part]:
        from .backend import MAX_BATCH, OPT_BATCH, device_index

        engines = build_part_engines(self.root, self.manifest, self.precision, MAX_BATCH, OPT_BATCH)
        return {part: EnginePart(engine, device_index(self.device)) for part, engine in engines.items()}
