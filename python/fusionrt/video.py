"""Video in, as trained: a clip's frames sampled the way a model's training sampled them (PyAV).

The one home of the frame sampling rule that both worlds use: training (:mod:`training.data.frames`)
turns MOSI's segment clips into images with it, and serving (``Session.predict(video=...)``) does the
same to a clip, so serving sees what training saw. A clip becomes one RGB image (uint8, H x W x 3):

* ``"middle"``: the frame in the middle of the clip;
* ``"uniform"``: ``num_frames`` frames at the centres of equal slices of the clip, averaged
  pixel-wise (rounded to the nearest integer) - a cheap summary of the whole clip for image backbones.

Frames are resized straight to ``size`` (no crop) with area filtering. PyAV (``av``, which links
FFmpeg) is imported only to decode: ``pip install fusionrt[video]``.

Example:
    >>> sampling = FrameSampling("uniform", num_frames=4, size=(64, 64))
    >>> sampling.indices(10)
    [1, 3, 6, 8]
    >>> clip_image("clip.mp4", sampling).shape  # doctest: +SKIP
    (64, 64, 3)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ._optional import require

#: The sampling modes.
SAMPLING_MODES = ("middle", "uniform")


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
        if self.mode not in SAMPLING_MODES:
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
    av = require("av")  # heavy (links FFmpeg); only clip decoding needs it

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


def _count_frames(container: Any) -> int:
    return sum(1 for _ in container.decode(video=0))


def _to_rgb(frame: Any, sampling: FrameSampling) -> np.ndarray:
    height, width = sampling.size
    # AREA filtering averages source pixels: no aliasing when shrinking a 360p frame to 224.
    return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")


def average_frames(frames: np.ndarray) -> np.ndarray:
    """One image of ``frames`` ``(n, H, W, 3)`` uint8: the frame itself for one, else the rounded pixel mean."""
    if len(frames) == 1:
        return frames[0]
    return np.rint(frames.astype(np.float32).mean(axis=0)).astype(np.uint8)


def clip_image(path: str | os.PathLike[str], sampling: FrameSampling) -> np.ndarray:
    """The image a clip becomes under ``sampling``: (H, W, 3) uint8 RGB (the sampled frames averaged).

    Raises:
        FileNotFoundError: the clip does not exist.
        ValueError: no decodable video stream or frames.
        ImportError: PyAV is not installed (``pip install fusionrt[video]``).
    """
    return average_frames(decode_clip_frames(path, sampling))
