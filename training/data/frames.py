"""Segment images: pick frames from a clip (PyAV) or a frame folder, resize, average, cache.

A segment becomes one RGB image (uint8, H x W x 3):

* ``"middle"``: the frame in the middle of the segment;
* ``"uniform"``: ``num_frames`` frames at the centres of equal slices of the segment, averaged
  pixel-wise — a cheap summary of the whole segment for image backbones.

Frames are resized straight to ``size`` (no crop): MOSI clips are webcam close-ups, so the face
stays whole. Decoding a clip is slow next to training, so :func:`load_segment_image` caches the
result as ``<cache_dir>/<segment>.<mode><k>.<H>x<W>.npy``, written atomically so parallel data
loader workers never read a partial file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from fusionrt.atomic import atomic_file
from fusionrt.image_decode import load_image
from training.data.mosi import ImageSource


@dataclass(frozen=True)
class FrameSampling:
    """How a segment's frames become one image.

    Attributes:
        mode: ``"middle"`` (one frame) or ``"uniform"`` (``num_frames`` frames, averaged).
        num_frames: frames averaged by ``"uniform"``; must be 1 for ``"middle"``.
        size: output (height, width).
    """

    mode: Literal["middle", "uniform"] = "middle"
    num_frames: int = 1
    size: tuple[int, int] = (224, 224)

    def __post_init__(self) -> None:
        if self.mode not in ("middle", "uniform"):
            raise ValueError(f"frame sampling mode is {self.mode!r}, expected 'middle' or 'uniform'")
        if self.num_frames < 1 or (self.mode == "middle" and self.num_frames != 1):
            raise ValueError(f"num_frames is {self.num_frames}, expected 1 for 'middle' and >= 1 for 'uniform'")
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"size is {self.size}, expected (height, width) with both >= 1")

    def indices(self, total: int) -> list[int]:
        """Frame indices to use out of ``total`` frames (repeats allowed when ``total`` is small)."""
        if total < 1:
            raise ValueError("cannot sample frames from a segment with 0 frames")
        # Centres of num_frames equal slices; "middle" is the one-slice case.
        return [int((i + 0.5) * total / self.num_frames) for i in range(self.num_frames)]

    def cache_name(self, segment: str) -> str:
        """File name of ``segment``'s cached image under these settings."""
        return f"{segment}.{self.mode}{self.num_frames}.{self.size[0]}x{self.size[1]}.npy"


def decode_clip_frames(path: str | os.PathLike[str], sampling: FrameSampling) -> np.ndarray:
    """Decode the sampled frames of a video clip with PyAV: (num_frames, H, W, 3) uint8 RGB.

    Raises:
        FileNotFoundError: the clip does not exist.
        ValueError: the file has no decodable video stream or no frames.
    """
    import av  # heavy (links FFmpeg); only clip decoding needs it

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video clip not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path} has no video stream")
            # Many containers leave the frame count out (0): count by decoding then. Where the
            # header over-counts, the fallback below covers the indices never reached.
            total = container.streams.video[0].frames or _count_frames(container)
        if total == 0:
            raise ValueError(f"{path} has no decodable video frames")
        with av.open(str(path)) as container:
            wanted = sampling.indices(total)
            picked: dict[int, np.ndarray] = {}
            last = None
            for i, frame in enumerate(container.decode(video=0)):
                if i > wanted[-1]:
                    break
                if i in wanted:
                    picked[i] = _to_rgb(frame, sampling)
                last = frame
            if last is None:
                raise ValueError(f"{path} has no decodable video frames")
            # Indices past the real end (the header over-counted): use the last frame.
            for i in wanted:
                if i not in picked:
                    picked[i] = _to_rgb(last, sampling)
    except av.error.FFmpegError as err:
        raise ValueError(f"cannot decode video clip {path}: {err}") from err
    return np.stack([picked[i] for i in wanted])


def _count_frames(container) -> int:
    return sum(1 for _ in container.decode(video=0))


def _to_rgb(frame, sampling: FrameSampling) -> np.ndarray:
    height, width = sampling.size
    # AREA filtering averages source pixels: no aliasing when shrinking a 360p frame to 224.
    return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")


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
        frames = decode_clip_frames(source.paths[0], sampling)
    elif source.kind == "frames":
        frames = read_frame_files(source.paths, sampling)
    else:
        raise ValueError(f"image source kind is {source.kind!r}, expected 'video' or 'frames'")
    if len(frames) == 1:
        return frames[0]
    return np.rint(frames.astype(np.float32).mean(axis=0)).astype(np.uint8)


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
