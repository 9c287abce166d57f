"""Tiny video clips for the tests, encoded with PyAV (the ``[video]`` extra): one writer for every test
that needs a clip."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


def write_clip(path: str | os.PathLike[str], frames: np.ndarray) -> None:
    """Encodes RGB ``frames`` (n, H, W, 3) uint8 as a 10 fps clip at ``path`` (its folder made if missing)."""
    import av

    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def flat_frames(values: Sequence[int], size: tuple[int, int]) -> np.ndarray:
    """Frames whose frame i is a flat grey of ``values[i]`` (flat frames survive lossy codecs closely)."""
    return np.stack([np.full((*size, 3), v, np.uint8) for v in values])
