"""Any image a user hands over, as the 8-bit RGB picture the model was trained on.

One rule for training (frame files) and serving (``Session.predict``), so both see the same pixels:

* EXIF orientation is applied (a phone photo stored sideways is shown upright);
* 16-bit images (PNG ``I;16``, 32-bit ``I``, ``uint16`` arrays) are scaled to 8 bits (``/ 257``),
  not clipped; float images (``F``) are taken as 0..1;
* transparency (RGBA, LA, palette with a transparent entry) is composited over white, as Hugging
  Face image processors do, so a transparent background is not whatever colour sat under it;
* grayscale, 1-bit, palette, CMYK and YCbCr become RGB through Pillow's conversions;
* an empty image (no pixels, a zero-byte or undecodable file) is a ``ValueError`` naming it.

Example:
    >>> load_image(np.zeros((2, 3), np.uint16)).mode  # doctest: +SKIP
    'RGB'
"""

from __future__ import annotations

import os
from typing import Any, Union

import numpy as np

from ._optional import require

# Anything predict() accepts as one image: a file path, a PIL image, or an HWC (or HW) array.
ImageLike = Union[str, os.PathLike, np.ndarray, Any]

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def load_image(image: ImageLike) -> Any:
    """``image`` (a file path, a PIL image, or a uint8 / uint16 array shaped HW or HWC with 1, 3 or
    4 channels) as an upright 8-bit PIL RGB image."""
    pil = require("PIL.Image")
    if isinstance(image, (str, os.PathLike)):
        try:
            with pil.open(image) as opened:
                opened.load()
                return _rgb(opened, repr(os.fspath(image)))
        except (pil.UnidentifiedImageError, OSError, SyntaxError) as error:
            if isinstance(error, FileNotFoundError):
                raise
            raise ValueError(f"image file {os.fspath(image)!r} cannot be decoded as an image: {error}") from None
    if isinstance(image, pil.Image):
        return _rgb(image, "image")
    if isinstance(image, np.ndarray):
        return _rgb(_from_array(image), "image array")
    raise TypeError(f"image is a {type(image).__name__}, expected a file path, PIL.Image or uint8 numpy array")


def _from_array(array: np.ndarray) -> Any:
    pil = require("PIL.Image")
    if array.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"image array is {array.dtype}, expected uint8 (0..255) or uint16 (0..65535), HWC")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(f"image array has shape {array.shape}, expected (height, width, 3), (height, width, 4) or (height, width)")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"image array has shape {array.shape}: it has no pixels")
    if array.dtype == np.uint16:
        array = _eight_bit(array)
    # fromarray needs C order; views with negative or gapped strides are copied here, once.
    return pil.fromarray(np.ascontiguousarray(array))


def _eight_bit(array: np.ndarray) -> np.ndarray:
    """16-bit values to 8 bits: 65535 / 257 = 255 exactly, rounded to nearest."""
    return ((np.clip(array.astype(np.int64), 0, 65535) + 128) // 257).astype(np.uint8)


def _rgb(image: Any, what: str) -> Any:
    pil, ops = require("PIL.Image"), require("PIL.ImageOps")
    if image.width == 0 or image.height == 0:
        raise ValueError(f"{what} is {image.width}x{image.height}: it has no pixels")
    image = ops.exif_transpose(image) or image
    if image.mode in _SIXTEEN_BIT_MODES:
        image = pil.fromarray(_eight_bit(np.asarray(image)))
    elif image.mode == "F":
        image = pil.fromarray((np.clip(np.asarray(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = pil.new("RGBA", rgba.size, (255, 255, 255, 255))
        return pil.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
