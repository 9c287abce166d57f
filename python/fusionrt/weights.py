"""Shared weight files: each weight tensor stored once, read by every graph that holds it.

A lean bundle (format 3) keeps the weights of a precision in one file (``model.weights`` for fp32,
``model.int8.weights``, ``model.fp16.weights``), named by the variant's ``weights`` field. Its ONNX
graphs hold no tensor data of their own: each large initializer is ONNX *external data*, a
``(location, offset, length)`` into that file. ONNX Runtime and TensorRT's ONNX parser both read
external data relative to the graph's directory, so the graphs stay loadable as ordinary ONNX files.
The standard and the plugin graph point at the same bytes, and so do the two int8 graphs wherever
their tensors are equal (content, not names, decides: :func:`pool_graphs` keys by SHA-256).

From format 4 on, equal tensors are stored once across precisions too: an int8 or fp16 graph's tensor
whose bytes are already in the fp32 file (the int8 graphs keep the word-embedding table, LayerNorms and
biases in float) points into ``model.weights``, named by the variant's ``shared_weights``. The fp32 file
is the one shared, not a third file, because it is in every bundle and every device copy anyway (fp32
is the variant every bundle has, and the torch program's table already points into it), so sharing adds
no file and moves no fp32 byte; the precision's own file keeps only what differs from fp32.

A graph is untrusted input like the manifest: :func:`check_graph_data` refuses a graph whose external
data names any file but its variant's weights files (:attr:`fusionrt.bundle.Variant.weights_files`: so
nothing leads outside the bundle, by ``..``, an absolute path or a symlink) or a range past the end of
the file it names, before a runtime opens it.

Needs the ``onnx`` package (``pip install fusionrt[onnx]``), imported only here, only when called.

Example:
    >>> fp32 = pool_graphs({"model.onnx": src / "model.onnx", "model.plugins.onnx": src / "model.plugins.onnx"},
    ...                    dst, "model.weights")  # doctest: +SKIP
    >>> int8 = pool_graphs({"model.int8.onnx": src / "model.int8.onnx"}, dst, "model.int8.weights",
    ...                    shared=fp32)  # doctest: +SKIP
    >>> check_graph_data(root, "model.int8.onnx", ("model.int8.weights", "model.weights"))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._optional import require
from .bundle import BundleError, bundle_file

#: Tensors at least this large go to the weights file; smaller ones (shapes, scales, zero points) stay
#: in the graph, where their bytes cost less than the external-data entry that would name them.
MIN_EXTERNAL_BYTES = 1024
#: Tensors of at least PAGE_TENSOR_BYTES start at a multiple of PAGE in the weights file, so runtimes that
#: map the file (ONNX Runtime does for page-aligned offsets) can use the bytes in place; smaller ones at a
#: multiple of ALIGNMENT (enough for any vector load), so hundreds of small tensors waste no pages.
PAGE, PAGE_TENSOR_BYTES, ALIGNMENT = 4096, 1 << 16, 64


@dataclass
class Pool:
    """A weights file being written: where each distinct tensor's bytes went.

    ``shared``: another precision's pool whose bytes this one's graphs read rather than store again
    (:meth:`place`); ``reads_shared`` says whether any did.
    """

    path: Path
    #: sha256 of the bytes -> (offset, length).
    index: dict[str, tuple[int, int]] = field(default_factory=dict)
    size: int = 0
    shared: Pool | None = None
    reads_shared: bool = False

    def find(self, data: bytes) -> tuple[int, int] | None:
        """The (offset, length) of bytes equal to ``data`` in the file, None if it has none."""
        return self.index.get(hashlib.sha256(data).hexdigest())

    def place(self, data: bytes) -> tuple[str, int, int]:
        """``(file name, offset, length)`` a graph reads ``data`` from: the shared pool's bytes where equal
        ones are there, else this pool's (added unless there already)."""
        found = self.shared.find(data) if self.shared is not None else None
        if found is not None:
            self.reads_shared = True
            return (self.shared.path.name, *found)
        return (self.path.name, *self.add(data))

    def add(self, data: bytes) -> tuple[int, int]:
        """The (offset, length) of ``data`` in the file, appending it unless equal bytes are there already."""
        key = hashlib.sha256(data).hexdigest()
        if key not in self.index:
            align = PAGE if len(data) >= PAGE_TENSOR_BYTES else ALIGNMENT
            offset = -(-self.size // align) * align
            with open(self.path, "r+b" if self.path.exists() else "wb") as f:
                f.seek(offset)
                f.write(data)
            self.index[key] = (offset, len(data))
            self.size = offset + len(data)
        return self.index[key]


def _tensors(model: Any) -> list[Any]:
    """Every TensorProto of ``model`` (a ModelProto; the protos themselves, to edit in place) and of its
    subgraphs and functions: initializers and attributes."""
    from onnx.external_data_helper import _get_all_tensors

    return list(_get_all_tensors(model))


def pool_graphs(graphs: Mapping[str, str | os.PathLike[str]], out: str | os.PathLike[str], weights: str,
                pool: Pool | None = None, shared: Pool | None = None) -> Pool:
    """Writes each graph ``{name: source path}`` to ``out / name`` with its large tensors in ``out / weights``,
    or, where ``shared`` (the fp32 pool, written already) holds equal bytes, pointing at those.

    A source may hold its tensors itself or as external data (read relative to the source's folder),
    so the same call makes a lean bundle at export and a smaller device copy of one (``fusionrt pack``).
    Equal bytes are stored once, however many graphs or tensors hold them. Returns the pool (pass it
    on to add more tensors, e.g. the torch program's; its ``reads_shared`` says whether the graphs read
    ``shared``); ``out / weights`` is created or replaced.
    """
    onnx = require("onnx")
    from onnx import numpy_helper

    out = Path(out)
    if pool is None:
        (out / weights).unlink(missing_ok=True)
        pool = Pool(out / weights, shared=shared)
    for name, source in graphs.items():
        model = onnx.load(str(source), load_external_data=True)
        for tensor in _tensors(model):
            data = tensor.raw_data if tensor.HasField("raw_data") else numpy_helper.to_array(tensor).tobytes()
            if len(data) < MIN_EXTERNAL_BYTES:
                continue
            location, offset, length = pool.place(data)
            tensor.ClearField("raw_data")
            for attribute in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data"):
                tensor.ClearField(attribute)
            del tensor.external_data[:]
            for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            tensor.data_location = onnx.TensorProto.EXTERNAL
        # Written to a temporary name and renamed: a pack into the source folder never reads a half-written graph.
        partial = out / f".{name}.partial"
        onnx.save_model(model, str(partial))
        os.replace(partial, out / name)
    if not pool.path.exists():
        pool.path.write_bytes(b"")
    return pool


def graph_data_files(path: str | os.PathLike[str]) -> dict[str, list[tuple[int, int, str]]]:
    """``{location: [(offset, length, tensor name), ...]}`` of the external data graph ``path`` names
    (the graph is parsed without its data; its locations are not checked here)."""
    onnx = require("onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf raises DecodeError, onnx other errors, for a malformed file
        raise BundleError(f"{Path(path).name} is not a valid ONNX file: {error}") from None
    files: dict[str, list[tuple[int, int, str]]] = {}
    for tensor in _tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", -1))
        except ValueError:
            raise BundleError(f"{Path(path).name}: tensor {tensor.name!r} has a malformed external-data offset "
                              f"or length ({info})") from None
        files.setdefault(info.get("location", ""), []).append((offset, length, tensor.name))
    return files


def check_graph_data(root: str | os.PathLike[str], graph: str, weights_files: Sequence[str]) -> None:
    """Refuses graph ``graph`` of the bundle at ``root`` unless all its external data lies in ``weights_files``
    (its variant's :attr:`~fusionrt.bundle.Variant.weights_files`; empty: the graph must hold its data
    itself), each range inside the bounds of the file it names.

    Raises :class:`BundleError` naming the graph, the tensor and the location, before any runtime
    opens the graph (ONNX Runtime would follow a location wherever it leads).
    """
    if isinstance(weights_files, str):  # `in` would then match substrings of the one name
        raise TypeError(f"weights_files is the str {weights_files!r}, expected a sequence of file names "
                        "(Variant.weights_files)")
    root = Path(root)
    for location, ranges in graph_data_files(bundle_file(root, graph, graph)).items():
        offset, length, tensor = ranges[0]
        if location not in weights_files:
            expected = (f"one of {list(weights_files)} (its variant's weights files)" if weights_files
                        else "none (the variant has no weights file)")
            raise BundleError(
                f"{graph}: tensor {tensor!r} reads external data from {location!r}, expected {expected}; "
                "a bundle's graphs may read nothing else"
            )
        size = bundle_file(root, location, f"{graph} external data").stat().st_size
        for offset, length, tensor in ranges:
            if offset < 0 or length < 0 or offset + length > size:
                raise BundleError(
                    f"{graph}: tensor {tensor!r} reads bytes {offset}..{offset + length} of {location}, "
                    f"which has {size} bytes (expected an offset >= 0 and an explicit length within the file)"
                )


def check_bundle_data(root: str | os.PathLike[str], manifest: Any) -> list[str]:
    """:func:`check_graph_data` of every graph the bundle ships (``fusionrt verify``); returns their names."""
    checked = []
    for variant in manifest.variants.values():
        for graph in dict.fromkeys((variant.onnx, variant.plugins_onnx, variant.onnxruntime_onnx)):
            if graph is not None and graph in manifest.files:
                check_graph_data(root, graph, variant.weights_files)
                checked.append(graph)
    return checked
