"""CMU Multimodal SDK computational sequences (``.csd``): HDF5 files of timestamped features.

Layout, as written by the SDK (``mmsdk.mmdatasdk``)::

    /<root name>/data/<video id>/features    (n, d) array, one row per interval
    /<root name>/data/<video id>/intervals   (n, 2) float [start, end] in seconds
    /<root name>/metadata/<field>            (1,) variable-length string per metadata field

Features may be numbers (labels, acoustic features) or bytes (the timestamped-words sequence
stores one word per row). This module knows the format only; what the rows mean for CMU-MOSI
lives in :mod:`training.data.mosi`.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from fusionrt.atomic import atomic_file


@dataclass(frozen=True)
class VideoSequence:
    """The rows of one video: ``features`` (n, d) and ``intervals`` (n, 2), in file order."""

    features: np.ndarray
    intervals: np.ndarray


@dataclass(frozen=True)
class ComputationalSequence:
    """One ``.csd`` file in memory: root name, per-video sequences and metadata strings."""

    root_name: str
    videos: dict[str, VideoSequence]
    metadata: dict[str, str] = field(default_factory=dict)


def read_computational_sequence(path: str | os.PathLike[str]) -> ComputationalSequence:
    """Read a computational sequence ``.csd`` file.

    Rows are kept in file order (never sorted by time): CMU-MOSI names segments by their position in
    the file, and a few of its label files list segments out of time order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not HDF5, or does not have the SDK layout described above.

    Example:
        >>> seq = read_computational_sequence("CMU_MOSI_Opinion_Labels.csd")  # doctest: +SKIP
        >>> seq.videos["03bSnISJMiM"].features.shape
        (13, 1)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"computational sequence not found: {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path} is not a readable HDF5 computational sequence: {err}") from err
    with handle:
        roots = list(handle.keys())
        if len(roots) != 1:
            raise ValueError(f"{path}: expected exactly one root group (the sequence name), found {roots}")
        root_name = roots[0]
        root = handle[root_name]
        if not isinstance(root, h5py.Group) or "data" not in root:
            raise ValueError(f"{path}: expected group '/{root_name}/data' (SDK layout), found {_keys(root)}")
        data = root["data"]
        videos = {video: _read_video(path, f"/{root_name}/data/{video}", data[video]) for video in data}
        metadata = _read_metadata(root["metadata"]) if "metadata" in root else {}
    return ComputationalSequence(root_name=root_name, videos=videos, metadata=metadata)


def write_computational_sequence(path: str | os.PathLike[str], sequence: ComputationalSequence) -> None:
    """Write ``sequence`` in the SDK layout, atomically and byte-for-byte reproducibly.

    Byte-reproducible because HDF5 object timestamps are switched off.
    """
    with atomic_file(path) as tmp, h5py.File(tmp, "w") as handle:
        root = handle.create_group(sequence.root_name)
        data = root.create_group("data")
        for video, seq in sequence.videos.items():
            group = data.create_group(video)
            features = seq.features
            if features.dtype.kind in "SUO":
                features = np.asarray(features, dtype=object)
                group.create_dataset("features", data=features, dtype=h5py.string_dtype("utf-8"), track_times=False)
            else:
                group.create_dataset("features", data=features, track_times=False)
            group.create_dataset("intervals", data=seq.intervals, track_times=False)
        metadata = root.create_group("metadata")
        for key, value in sequence.metadata.items():
            metadata.create_dataset(
                key, data=np.array([value], dtype=object), dtype=h5py.string_dtype("utf-8"), track_times=False
            )


def _keys(node: h5py.Group | h5py.Dataset) -> list[str]:
    return list(node.keys()) if isinstance(node, h5py.Group) else [f"<dataset {node.shape}>"]


def _read_video(path: Path, where: str, node: h5py.Group | h5py.Dataset) -> VideoSequence:
    if not isinstance(node, h5py.Group) or "features" not in node or "intervals" not in node:
        raise ValueError(f"{path}: expected datasets 'features' and 'intervals' in {where}, found {_keys(node)}")
    features = node["features"][()]
    intervals = np.asarray(node["intervals"][()], dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"{path}: {where}/features has shape {features.shape}, expected (n, d)")
    if intervals.ndim != 2 or intervals.shape[1] != 2:
        raise ValueError(f"{path}: {where}/intervals has shape {intervals.shape}, expected (n, 2)")
    if len(features) != len(intervals):
        raise ValueError(
            f"{path}: {where} has {len(features)} feature rows but {len(intervals)} intervals, expected equal"
        )
    return VideoSequence(features=features, intervals=intervals)


def _read_metadata(group: h5py.Group | h5py.Dataset) -> dict[str, str]:
    if not isinstance(group, h5py.Group):
        return {}
    metadata = {}
    for key, node in group.items():
        if not isinstance(node, h5py.Dataset):
            continue
        value = node[()]
        # The SDK stores each field as a (1,) array of one string.
        value = value[0] if isinstance(value, np.ndarray) and value.size == 1 else value
        metadata[key] = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    return metadata


def decode_words(features: np.ndarray) -> list[str]:
    """Turn the (n, 1) bytes features of a timestamped-words sequence into ``n`` Python strings."""
    return [w.decode("utf-8") if isinstance(w, bytes) else str(w) for w in np.asarray(features).reshape(-1)]


def words_by_segment(
    words: VideoSequence, segments: np.ndarray, skip: Collection[str] = frozenset({"sp"})
) -> list[str]:
    """Assemble one transcript per segment from a video's timestamped words.

    A word belongs to a segment when more than half of its duration lies inside the segment's
    interval (for zero-length words: when its time lies inside). Halving, rather than any overlap,
    keeps a word that straddles two adjacent segments from appearing in both. Words in ``skip``
    (the SDK's ``sp`` silence markers) are dropped.

    Args:
        words: the video's words sequence (features are words as bytes, intervals their times).
        segments: (m, 2) segment intervals, e.g. from the opinion-labels sequence.

    Returns:
        ``m`` transcripts, words joined by single spaces in time order ("" for a segment with none).
    """
    tokens = decode_words(words.features)
    starts, ends = words.intervals[:, 0], words.intervals[:, 1]
    order = np.argsort(starts, kind="stable")
    transcripts = []
    for seg_start, seg_end in np.asarray(segments, dtype=np.float64):
        inside = np.clip(np.minimum(ends, seg_end) - np.maximum(starts, seg_start), 0.0, None)
        duration = ends - starts
        point_inside = (duration <= 0) & (starts >= seg_start) & (starts <= seg_end)
        member = ((inside > 0.5 * duration) & (duration > 0)) | point_inside
        transcripts.append(" ".join(tokens[i] for i in order if member[i] and tokens[i] not in skip))
    return transcripts
