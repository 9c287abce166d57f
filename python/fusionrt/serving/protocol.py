"""What a served fusionrt model takes and returns over Triton, and the request decoding both of its
Python models (the whole-bundle model and the ensemble's pre-processing step) share.

Every input is per sample (Triton adds the batch axis) and optional:

===============  ===========  ===========  ======================================================
input            Triton type  dims         meaning
===============  ===========  ===========  ======================================================
``text``         BYTES        ``[1]``      UTF-8 text; empty means the sample has no text
``image``        BYTES        ``[1]``      an encoded image file (PNG, JPEG, ...); empty: none
``image_array``  UINT8        ``[-1,-1,3]``  RGB pixels, HWC (instead of ``image``)
===============  ===========  ===========  ======================================================

Outputs are FP32: ``score`` (and ``score_text`` / ``score_image`` where the model has branch scores)
seen by clients as ``(batch, 1)``, ``logits`` as ``(batch, classes)``: the fields of
:class:`fusionrt.Prediction`, with the same values.

Example:
    >>> texts_of(np.array([[b"great"], [b""]], dtype=object), 2)
    ['great', None]
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._optional import require
from ..session import PREDICTION_OUTPUTS, Prediction

TEXT_INPUT = "text"
IMAGE_INPUT = "image"
IMAGE_ARRAY_INPUT = "image_array"
#: (name, Triton dtype as a manifest spells it, per-sample dims) of the request inputs.
REQUEST_INPUTS = ((TEXT_INPUT, "bytes", [1]), (IMAGE_INPUT, "bytes", [1]), (IMAGE_ARRAY_INPUT, "uint8", [-1, -1, 3]))


def _column(values: np.ndarray, name: str, batch: int) -> list[Any]:
    if values.shape != (batch, 1):
        raise ValueError(f"input {name!r} has shape {list(values.shape)}, expected [{batch}, 1] (one entry per sample)")
    return [v for v in values[:, 0]]


def texts_of(values: np.ndarray | None, batch: int) -> list[str | None]:
    """The ``text`` input's entries as strings (None: no text), checked to be UTF-8."""
    if values is None:
        return [None] * batch
    texts: list[str | None] = []
    for i, value in enumerate(_column(values, TEXT_INPUT, batch)):
        if isinstance(value, str):
            value = value.encode()
        if not isinstance(value, bytes):
            raise TypeError(f"input {TEXT_INPUT!r} entry {i} is {type(value).__name__}, expected bytes (UTF-8 text)")
        try:
            texts.append(value.decode("utf-8") or None)
        except UnicodeDecodeError as error:
            raise ValueError(f"input {TEXT_INPUT!r} entry {i} is not UTF-8 text: {error}") from None
    return texts


def images_of(encoded: np.ndarray | None, pixels: np.ndarray | None, batch: int) -> list[Any]:
    """The samples' images: decoded ``image`` files (PIL images), rows of ``image_array``, or None."""
    if encoded is not None and pixels is not None:
        # Tools that send every input (perf_analyzer) may send empty image bytes beside the array.
        if any(len(v) for v in encoded.ravel()):
            raise ValueError(f"request has both {IMAGE_INPUT!r} and {IMAGE_ARRAY_INPUT!r}, expected at most one")
        encoded = None
    if pixels is not None:
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[0] != batch or pixels.shape[3] != 3:
            raise ValueError(f"input {IMAGE_ARRAY_INPUT!r} is {pixels.dtype} {list(pixels.shape)}, "
                             f"expected uint8 [{batch}, height, width, 3] (RGB, HWC)")
        return list(pixels)
    if encoded is None:
        return [None] * batch
    pil = require("PIL.Image")
    images: list[Any] = []
    for i, value in enumerate(_column(encoded, IMAGE_INPUT, batch)):
        if not isinstance(value, bytes):
            raise TypeError(f"input {IMAGE_INPUT!r} entry {i} is {type(value).__name__}, expected bytes (an image file)")
        if not value:
            images.append(None)
            continue
        try:
            image = pil.open(io.BytesIO(value))
            image.load()
        except Exception as error:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ValueError...
            raise ValueError(f"input {IMAGE_INPUT!r} entry {i} ({len(value)} bytes) is not a decodable image: {error}") from None
        images.append(image)
    return images


def output_columns(predictions: Sequence[Prediction], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The response tensors of ``predictions``: each output in ``names`` as float32 ``(n, 1)`` (scores)
    or ``(n, classes)`` (logits)."""
    columns = {}
    for name in names:
        values = [getattr(p, name) for p in predictions]
        array = np.asarray(values, dtype=np.float32)
        columns[name] = array.reshape(len(predictions), -1)
    return columns


def served_outputs(graph_outputs: Sequence[str]) -> list[str]:
    """The graph's outputs that a served prediction carries, in :data:`PREDICTION_OUTPUTS` order."""
    return [name for name in PREDICTION_OUTPUTS if name in graph_outputs]


__all__ = ["IMAGE_ARRAY_INPUT", "IMAGE_INPUT", "REQUEST_INPUTS", "TEXT_INPUT", "images_of", "output_columns",
           "served_outputs", "texts_of"]
