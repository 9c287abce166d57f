"""The torch program's weights in a lean bundle: a table in ``model.pt2`` into the fp32 weights file.

A lean bundle's ``model.pt2`` stores every parameter, buffer and tensor constant as a one-element
placeholder broadcast to its shape (a few bytes each); its extra file :data:`TABLE_NAME` says where each
tensor's bytes lie in the fp32 weights file (``model.weights``), which the ONNX graphs read too. Most
tensors are the very bytes of an ONNX initializer; a Linear weight the ONNX graph stores transposed is
recorded with ``transposed`` and transposed back here. The exporter writes the table
(:mod:`training.export.lean`); :func:`fill_state` reads it when the torch backend opens the program.

The table is untrusted input: it must cover every tensor of the program, with its dtype and shape,
inside the weights file, or loading fails with a :class:`~fusionrt.bundle.BundleError` naming the
tensor (a tensor left a placeholder would answer silently wrong).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import BundleError

#: The table's name among ``model.pt2``'s extra files.
TABLE_NAME = "fusionrt_weights.json"
TABLE_FORMAT = 1
#: dtypes a table entry may have (numpy spelling).
TABLE_DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")


def fill_state(torch: Any, exported: Any, table_text: str, root: Path, weights: str | None, program: str) -> None:
    """Replaces the placeholders of ``exported`` (an ExportedProgram) with the tensors the table
    ``table_text`` locates in ``root / weights``. An empty table (a program with its own weights) is a no-op."""
    if not table_text:
        return
    where = f"{program} ({TABLE_NAME})"
    try:
        table = json.loads(table_text)
    except json.JSONDecodeError as error:
        raise BundleError(f"{where} is not valid JSON: {error}") from None
    if not isinstance(table, dict) or table.get("format") != TABLE_FORMAT:
        raise BundleError(f"{where} is not a format-{TABLE_FORMAT} weights table")
    if weights is None or table.get("weights") != weights:
        raise BundleError(f"{where} reads weights from {table.get('weights')!r}, expected the fp32 variant's "
                          f"weights file {weights!r}")
    from ..bundle import bundle_file

    path = bundle_file(root, weights, "manifest.variants.fp32.weights")
    size = path.stat().st_size
    for group, tensors in (("state_dict", exported.state_dict), ("constants", exported.constants)):
        entries = table.get(group)
        if not isinstance(entries, dict):
            raise BundleError(f"{where}: {group!r} is missing or not an object")
        for name, placeholder in list(tensors.items()):
            if not isinstance(placeholder, torch.Tensor):
                continue
            entry = entries.get(name)
            if entry is None:
                raise BundleError(f"{where}: {group} tensor {name!r} of the program has no entry in the table")
            value = torch.from_numpy(_read(path, size, entry, f"{where}: {group}[{name!r}]"))
            if entry.get("transposed"):
                value = value.T.contiguous()
            if tuple(value.shape) != tuple(placeholder.shape) or value.dtype != placeholder.dtype:
                raise BundleError(f"{where}: {group}[{name!r}] is {value.dtype} {tuple(value.shape)} in the weights "
                                  f"file, the program expects {placeholder.dtype} {tuple(placeholder.shape)}")
            if isinstance(placeholder, torch.nn.Parameter):
                value = torch.nn.Parameter(value, requires_grad=placeholder.requires_grad)
            tensors[name] = value


def _read(path: Path, size: int, entry: Any, where: str) -> np.ndarray:
    """The array one table entry describes, read from the weights file (checked against its bounds)."""
    if not isinstance(entry, dict):
        raise BundleError(f"{where} is not an object")
    offset, dtype, shape = entry.get("offset"), entry.get("dtype"), entry.get("shape")
    if dtype not in TABLE_DTYPES:
        raise BundleError(f"{where}.dtype is {dtype!r}, expected one of {list(TABLE_DTYPES)}")
    if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise BundleError(f"{where}.shape is {shape!r}, expected a list of sizes >= 0")
    if entry.get("transposed") and len(shape) != 2:
        raise BundleError(f"{where} is transposed with shape {shape}, expected a 2-D tensor")
    count = math.prod(shape)
    length = count * np.dtype(dtype).itemsize
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 or offset + length > size:
        raise BundleError(f"{where} reads bytes {offset}..+{length} of a {size}-byte weights file, expected "
                          "an offset >= 0 with the tensor inside the file")
    stored = shape[::-1] if entry.get("transposed") else shape
    with open(path, "rb") as f:
        f.seek(offset)
        return np.frombuffer(bytearray(f.read(length)), dtype=dtype).reshape(stored)
