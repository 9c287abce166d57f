"""Raw text and images to graph inputs, exactly as the bundle's manifest says.

Text: the bundle's Hugging Face ``tokenizers`` file, truncated and padded to ``text.max_length``.
Images: decoded to 8-bit RGB by :func:`fusionrt.image_decode.load_image` (EXIF orientation, 16-bit,
alpha and palette handled as training saw them; an HWC uint8 RGB array is taken as it is), then resized
to ``image.size`` (height, width), scaled to [0, 1], normalised with ``image.mean`` / ``image.std`` and
written into its slot of the float32 batch in the manifest's ``layout``. For ``bilinear`` (what bundles
record) those steps are one fused op, ``fusionrt._C.preprocess_image`` (CPU and CUDA kernels in
``csrc/kernels/*/image_preprocess.*``): antialiased as PIL and torchvision's ``resize(antialias=True)``
are, computed in float without PIL's intermediate 8-bit rounding, so within 1/255 of them. Other
interpolations resize with PIL. On a backend that makes the image input on its device (TensorRT:
:class:`~fusionrt.backends.base.RunsImages`), ``Session.predict`` hands it the decoded frames instead, and
the op's CUDA kernel writes them straight into the engine's input (:func:`feeds_besides_image` makes the rest).

A missing sample (``None``) becomes zeros (text: zero ids, mask of ones) and a False entry in the returned presence vector, which
the session passes as the ``presence`` input, so the model uses its learned placeholder instead.

Example:
    >>> tokenizer = TextTokenizer("bundle/tokenizer.json", max_length=64)  # doctest: +SKIP
    >>> ids, mask, present = tokenizer(["what a film", None])  # doctest: +SKIP
    >>> images, present = preprocess_images(["face.png", None], manifest.image)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from . import _C
from ._optional import require
from .bundle import ImageSpec, Manifest
from .graph_io import ATTENTION_MASK, INPUT_IDS, PIXELS, PRESENCE
from .image_decode import ImageLike, load_image

_RESAMPLING = {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "lanczos": "LANCZOS"}


class TextTokenizer:
    """Tokenises strings to ``input_ids`` / ``attention_mask`` int64 ``(batch, max_length)``.

    Example:
        >>> ids, mask, present = TextTokenizer("tokenizer.json", 16)(["good", None])  # doctest: +SKIP
        >>> ids.shape, present.tolist()  # doctest: +SKIP
        ((2, 16), [True, False])
    """

    def __init__(self, path: str | os.PathLike[str], max_length: int) -> None:
        tokenizers = require("tokenizers")
        self.max_length = max_length
        self._tokenizer = tokenizers.Tokenizer.from_file(os.fspath(path))
        #: Every id the tokenizer can make is below this (added tokens included).
        self.vocab_size: int = self._tokenizer.get_vocab_size(with_added_tokens=True)
        # Keep the file's pad token where it names one; fixed length so every batch has the graph's shape.
        padding = self._tokenizer.padding or {}
        pad_kwargs = {k: padding[k] for k in ("pad_id", "pad_token", "pad_type_id") if k in padding}
        self._tokenizer.enable_padding(length=max_length, **pad_kwargs)
        self._tokenizer.enable_truncation(max_length=max_length)

    def __call__(self, texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns ``(input_ids, attention_mask, present)``; ``None`` entries are zero ids under a
        mask of ones (as the exporter feeds absent text), so no row is an all-masked softmax."""
        present = np.array([t is not None for t in texts], dtype=bool)
        ids = np.zeros((len(texts), self.max_length), dtype=np.int64)
        mask = np.ones((len(texts), self.max_length), dtype=np.int64)
        given = [t for t in texts if t is not None]
        for t in given:
            if not isinstance(t, str):
                raise TypeError(f"text entries must be str or None, got {type(t).__name__}")
        if given:
            encodings = self._tokenizer.encode_batch(given)
            ids[present] = [e.ids for e in encodings]
            mask[present] = [e.attention_mask for e in encodings]
        return ids, mask, present


def preprocess_images(images: Sequence[ImageLike | None], spec: ImageSpec) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(batch float32 array in spec.layout, present bool (batch,))``; ``None`` entries are zeros.

    Example:
        >>> array, present = preprocess_images([np.zeros((10, 10, 3), np.uint8)], ImageSpec(size=[32, 32]))
        >>> array.shape, present.tolist()
        ((1, 3, 32, 32), [True])
    """
    _check_spec(spec)
    if not fused(spec):
        return _preprocess_with_pil(images, spec)
    height, width = spec.size
    present = np.array([image is not None for image in images], dtype=bool)
    shape = (len(images), 3, height, width) if spec.layout == "NCHW" else (len(images), height, width, 3)
    # Absent samples stay zero (not -mean/std), as "missing" means.
    batch = np.zeros(shape, dtype=np.float32)
    for i, image in enumerate(images):
        if image is not None:
            _C.preprocess_image(rgb_array(image), batch[i], spec.mean, spec.std, spec.layout, spec.channel_order)
    return batch, present


def fused(spec: ImageSpec) -> bool:
    """Whether the fused op (``_C.preprocess_image``, CPU and CUDA kernels) makes ``spec``'s images: bilinear
    resizes (what bundles record); other interpolations resize with PIL, on the host."""
    return spec.interpolation == "bilinear"


def raw_feeds(manifest: Manifest, text: tuple[np.ndarray, np.ndarray, np.ndarray],
              images: Sequence[ImageLike | None]) -> dict[str, np.ndarray]:
    """Graph feeds of a raw batch: ``text`` tokenized (ids, mask, present per sample: what
    :class:`TextTokenizer` returns) and ``images`` pre-processed here (None: absent).

    Raises:
        ValueError: a sample lacks a modality and the model has no presence input to say so.
    """
    pixels, image_present = preprocess_images(images, manifest.image)
    return {PIXELS: pixels, **feeds_besides_image(manifest, text, image_present)}


def feeds_besides_image(manifest: Manifest, text: tuple[np.ndarray, np.ndarray, np.ndarray],
                        image_present: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`raw_feeds` without the image input, for a backend that makes that one on its device from the
    decoded frames (:meth:`~fusionrt.backends.base.RunsImages.run_images`); ``image_present`` (bool,
    per sample) says which samples have an image.

    Example:
        >>> feeds = feeds_besides_image(manifest, tokenizer(["good"]), np.array([True]))  # doctest: +SKIP
        >>> sorted(feeds)  # doctest: +SKIP
        ['attention_mask', 'input_ids', 'presence']
    """
    ids, mask, text_present = text
    feeds = {INPUT_IDS: ids, ATTENTION_MASK: mask}
    presence = np.stack([text_present, image_present], axis=1)  # in graph_io.MODALITIES order
    if PRESENCE in manifest.inputs:
        feeds[PRESENCE] = presence
    elif not presence.all():
        raise ValueError(f"model {manifest.model_name!r} has no presence input; give every sample both text and image")
    return feeds


def rgb_array(image: ImageLike) -> np.ndarray:
    """``image`` as an upright HWC uint8 RGB array: an RGB uint8 array as it is (no copy), anything else
    through :func:`~fusionrt.image_decode.load_image`.

    Example:
        >>> rgb_array(np.zeros((4, 6), np.uint16)).shape  # 16-bit grayscale, decoded as training saw it
        (4, 6, 3)
    """
    if (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            and image.shape[0] > 0 and image.shape[1] > 0):
        # The kernel reads any positive strides; a flipped view is copied once.
        return image if all(s >= 0 for s in image.strides) else np.ascontiguousarray(image)
    return np.asarray(load_image(image))


def _check_spec(spec: ImageSpec) -> None:
    if spec.interpolation not in _RESAMPLING:
        raise ValueError(f"image interpolation {spec.interpolation!r} is not one of {sorted(_RESAMPLING)}")
    if spec.channel_order not in ("RGB", "BGR") or spec.layout not in ("NCHW", "NHWC"):
        raise ValueError(
            f"image channel_order {spec.channel_order!r} / layout {spec.layout!r}, expected RGB|BGR and NCHW|NHWC"
        )


def _preprocess_with_pil(images: Sequence[ImageLike | None], spec: ImageSpec) -> tuple[np.ndarray, np.ndarray]:
    """:func:`preprocess_images` by PIL's resize and numpy: the path for interpolations other than
    bilinear, and the baseline the fused op is benchmarked against."""
    _check_spec(spec)
    pil = require("PIL.Image")
    resample = getattr(pil.Resampling, _RESAMPLING[spec.interpolation])
    height, width = spec.size
    present = np.array([image is not None for image in images], dtype=bool)
    batch = np.zeros((len(images), height, width, 3), dtype=np.float32)
    for i, image in enumerate(images):
        if image is not None:
            batch[i] = np.asarray(load_image(image).resize((width, height), resample), dtype=np.float32)
    if spec.channel_order == "BGR":
        batch = batch[..., ::-1]
    # One vectorised pass over the batch; absent samples stay zero (not -mean/std), as "missing" means.
    mean, std = np.asarray(spec.mean, dtype=np.float32), np.asarray(spec.std, dtype=np.float32)
    batch[present] = (batch[present] / np.float32(255.0) - mean) / std
    if spec.layout == "NCHW":
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch), present
