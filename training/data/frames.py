"""Segment images: pick frames from a clip (PyAV) or a frame folder, resize, average, cache.

A segment becomes one RGB image (uint8, H x W x 3) under a :class:`FrameSampling` (``"middle"``
frame, or ``"uniform"`` frames averaged), whose rule and clip decoding live in :mod:`fusionrt.video`
so that serving samples a clip exactly as training did. Frames are resized straight to ``size`` (no
crop): MOSI clips are webcam close-ups, so the face stays whole. Decoding a clip is slow next to
training, so :func:`load_segment_image` caches the result as ``<cache_dir>/<segment>.<mode><k>.<H>x<W>.npy``, written atomically so parallel data
loader workers never read a partial file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from fusionrt.atomic import atomic_file
from fusionrt.image_decode import load_image
# The sampling rule and clip decoding live in the deployment package, so serving samples as training did.
from fusionrt.video import FrameSampling, average_frames, clip_image, decode_clip_frames  # noqa: F401
from training.data.mosi import ImageSource


def read_frame_files(paths: tuple[Path, ...], sampling: FrameSampling) -> np.ndarray:
    """Read the sampled images of a frame folder (sorted paths): (num_frames, H, W, 3) uint8 RGB."""
    height, width = sampling.size
    frames = []
    for i in sampling.indices(len(paths)):
        rgb = load_image(paths[i])  # serving decodes with the same rule
        if rgb.size != (width, height):
            rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
        frames.append(np.asarray(rgb, dtype=np.uint8))
    return np.stack(frames)


def segment_image(source: ImageSource, sampling: FrameSampling) -> np.ndarray:
    """The segment's image under ``sampling``: (H, W, 3) uint8 RGB (frames averaged if several)."""
    if source.kind == "video":
        return clip_image(source.paths[0], sampling)  # serving samples a clip with the same function
    if source.kind == "frames":
        return average_frames(read_frame_files(source.paths, sampling))
    raise ValueError(f"image source kind is {source.kind!r}, expected 'video' or 'frames'")


def load_segment_image(
    segment: str,
    source: ImageSource,
    sampling: FrameSampling,
    cache_dir: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """:func:`segment_image`, read from / written to ``cache_dir`` when one is given.

    Example:
        >>> img = load_segment_image("abc_1", sample.image, FrameSampling("uniform", 4, (112, 112)),
        ...                          cache_dir="cache/frames")  # doctest: +SKIP
        >>> img.shape, img.dtype
        ((112, 112, 3), dtype('uint8'))
    """
    if cache_dir is None:
        return segment_image(source, sampling)
    cached = Path(cache_dir) / sampling.cache_name(segment)
    if cached.is_file():
        return np.load(cached)
    image = segment_image(source, sampling)
    with atomic_file(cached) as tmp:
        np.save(tmp, image)
    return image
