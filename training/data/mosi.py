"""CMU-MOSI: opinion labels, standard folds, transcripts and the per-fold sample index.

Dataset root layouts the loader reads (every modality folder is optional)::

    <root>/CMU_MOSI_Opinion_Labels.csd          labels (SDK computational sequence)   [required]
    <root>/Transcript/Segmented/<V>.annotprocessed   one line per segment: "<k>_DELIM_<text>"
    <root>/Frames/<V>_<k>/*.png|*.jpg           pre-extracted frames of segment k of video V
    <root>/Video/Segmented/<V>_<k>.mp4          segment clips (decoded by training.data.frames)
    <root>/CMU_MOSI_TimestampedWords.csd        text when there is no Transcript/ (or ``words_path=``)
    <root>/standard_folds.json                  optional folds of your own (the generated set writes one)

* **The official raw release** (``CMU_MOSI.zip``) unpacks to a ``Raw/`` folder holding
  ``Transcript/Segmented``, ``Video/Segmented`` (and ``Audio/``, unused): the modality folders are
  looked for in ``<root>`` and then in ``<root>/Raw``, so ``<root>`` is the folder you unzipped into,
  with the labels ``.csd`` (not in the zip: fetch it with the SDK, below) put beside ``Raw/``.
* **An SDK download** (``mmdatasdk.mmdataset(mmdatasdk.cmu_mosi.labels, root)`` and
  ``mmdatasdk.cmu_mosi.raw``) writes ``CMU_MOSI_Opinion_Labels.csd`` and
  ``CMU_MOSI_TimestampedWords.csd`` into ``root``: text comes from the words, by segment interval.

Folds: neither download has a folds file. Unless ``folds_path=`` names one (or the root holds a
``standard_folds.json``), the standard folds are the SDK's (``cmu_mosi_std_folds``: 52 / 10 / 31
videos), read from ``mmsdk`` when it is installed, else from the same id lists shipped beside this
module (``mosi_standard_folds.json``). See :func:`standard_folds`.

The labels file may live elsewhere: pass ``labels_path=``.

Segment naming: segment ``k`` (1-based, in the order the labels file lists it) of video ``V`` is
``V_k``, the name of its raw clip. File order is kept even where it is not time order — the real
labels file lists a few segments out of time order (``VbQk4H8hgr0_46``, ``d6hH302o4v8_25``) and a
few with identical intervals (``bOL9jKpeJRs_24``/``_25``), and the clips are named by that order.
With the SDK's standard folds this gives 1284 / 229 / 686 train / valid / test segments.

Nothing here imports torch: the index is plain data (:class:`MosiSample`), turned into tensors by
:mod:`training.data.dataset`.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from training.data.csd import read_computational_sequence, words_by_segment

LABELS_FILENAME = "CMU_MOSI_Opinion_Labels.csd"
FOLDS_FILENAME = "standard_folds.json"
WORDS_FILENAME = "CMU_MOSI_TimestampedWords.csd"
TRANSCRIPT_DIR = Path("Transcript") / "Segmented"
FRAMES_DIR = Path("Frames")
VIDEO_DIR = Path("Video") / "Segmented"
RAW_DIR = Path("Raw")  # the official CMU_MOSI.zip's top folder
FOLDS = ("train", "valid", "test")
#: The CMU Multimodal SDK's module holding MOSI's standard folds, and its names for them.
SDK_FOLDS_MODULE = "mmsdk.mmdatasdk.dataset.standard_datasets.CMU_MOSI.cmu_mosi_std_folds"
SDK_FOLD_NAMES = {"train": "standard_train_fold", "valid": "standard_valid_fold", "test": "standard_test_fold"}
#: The same id lists, shipped so that the standard folds need no SDK.
SHIPPED_FOLDS_PATH = Path(__file__).with_name("mosi_standard_folds.json")
MODALITIES = ("text", "image")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
LABEL_RANGE = (-3.0, 3.0)

_ANNOT_LINE = re.compile(r"^(\d+)_DELIM_(.*)$")


def segment_id(video: str, k: int) -> str:
    """Name of segment ``k`` (1-based) of ``video``: ``f"{video}_{k}"``."""
    return f"{video}_{k}"


def read_opinion_labels(csd_path: str | os.PathLike[str]) -> dict[str, float]:
    """Read the opinion-segment labels: segment id -> sentiment score in [-3, 3].

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not an SDK computational sequence, features not (n, 1), or scores outside [-3, 3]
            or not finite.

    Example:
        >>> labels = read_opinion_labels("CMU_MOSI_Opinion_Labels.csd")  # doctest: +SKIP
        >>> labels["03bSnISJMiM_1"]
        2.4000000953674316
    """
    sequence = read_computational_sequence(csd_path)
    labels: dict[str, float] = {}
    for video, seq in sequence.videos.items():
        scores = np.asarray(seq.features)
        if scores.dtype.kind not in "fiu" or scores.shape[1] != 1:
            raise ValueError(
                f"{csd_path}: labels of video {video!r} have shape {scores.shape} and dtype {scores.dtype}, "
                "expected (n, 1) numbers"
            )
        scores = scores[:, 0].astype(np.float64)
        bad = ~np.isfinite(scores) | (scores < LABEL_RANGE[0]) | (scores > LABEL_RANGE[1])
        if bad.any():
            k = int(np.argmax(bad)) + 1
            raise ValueError(
                f"{csd_path}: label of segment {segment_id(video, k)} is {scores[k - 1]}, expected a finite "
                f"score in [{LABEL_RANGE[0]}, {LABEL_RANGE[1]}]"
            )
        labels.update((segment_id(video, k), float(s)) for k, s in enumerate(scores, start=1))
    return labels


def read_word_transcripts(words_path: str | os.PathLike[str], labels_path: str | os.PathLike[str]) -> dict[str, str]:
    """Build one transcript per labelled segment from the timestamped-words sequence.

    The labels file supplies the segments' intervals; words are assigned to them by overlap (see
    :func:`training.data.csd.words_by_segment`). Videos missing from the words file get no entry.
    """
    words = read_computational_sequence(words_path)
    labels = read_computational_sequence(labels_path)
    transcripts: dict[str, str] = {}
    for video, seq in labels.videos.items():
        if video in words.videos:
            texts = words_by_segment(words.videos[video], seq.intervals)
            transcripts.update((segment_id(video, k), t) for k, t in enumerate(texts, start=1))
    return transcripts


def read_folds(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read a folds file: ``{"train": [video ids], "valid": [...], "test": [...]}``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not JSON, or not exactly the keys train/valid/test with lists of strings, or a
            video in two folds.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"folds file not found: {path}")
    try:
        folds = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a JSON folds file: {err}") from err
    if not isinstance(folds, dict) or set(folds) != set(FOLDS):
        found = sorted(folds) if isinstance(folds, dict) else type(folds).__name__
        raise ValueError(f"{path}: expected an object with keys {list(FOLDS)}, found {found}")
    seen: dict[str, str] = {}
    for fold in FOLDS:
        videos = folds[fold]
        if not isinstance(videos, list) or not all(isinstance(v, str) for v in videos):
            raise ValueError(f"{path}: fold {fold!r} must be a list of video id strings")
        for video in videos:
            if video in seen:
                raise ValueError(f"{path}: video {video!r} is in both {seen[video]!r} and {fold!r}")
            seen[video] = fold
    return {fold: list(folds[fold]) for fold in FOLDS}


def standard_folds(source: Literal["auto", "mmsdk", "shipped"] = "auto") -> dict[str, list[str]]:
    """MOSI's standard train / valid / test video ids, as the CMU Multimodal SDK defines them.

    Args:
        source: ``"mmsdk"`` reads the SDK's ``cmu_mosi_std_folds``; ``"shipped"`` the copy of those
            lists shipped with this package; ``"auto"`` the SDK when it imports, else the copy.

    Raises:
        ImportError: ``source="mmsdk"`` and the SDK does not import (the error says why).
        ValueError: unknown ``source``, or the SDK module lacks a fold list.

    Example:
        >>> {fold: len(videos) for fold, videos in standard_folds("shipped").items()}
        {'train': 52, 'valid': 10, 'test': 31}
    """
    if source not in ("auto", "mmsdk", "shipped"):
        raise ValueError(f"standard_folds source must be 'auto', 'mmsdk' or 'shipped', got {source!r}")
    if source != "shipped":
        try:
            module = importlib.import_module(SDK_FOLDS_MODULE)
        except ImportError as err:
            if source == "mmsdk":
                raise ImportError(
                    f"the CMU Multimodal SDK's folds ({SDK_FOLDS_MODULE}) do not import: {err}; install the SDK "
                    "(mmsdk) or use the shipped copy (source='shipped')"
                ) from err
        else:
            missing = [name for name in SDK_FOLD_NAMES.values() if not isinstance(getattr(module, name, None), list)]
            if missing:
                raise ValueError(f"{SDK_FOLDS_MODULE} has no list {missing[0]!r}; is this the CMU Multimodal SDK?")
            return {fold: [str(v) for v in getattr(module, name)] for fold, name in SDK_FOLD_NAMES.items()}
    return read_folds(SHIPPED_FOLDS_PATH)


def read_annotprocessed(path: str | os.PathLike[str]) -> dict[int, str]:
    """Read a segmented transcript ``<V>.annotprocessed``: segment number k -> text.

    Raises:
        ValueError: a non-blank line is not ``<k>_DELIM_<text>``.
    """
    path = Path(path)
    texts: dict[int, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        match = _ANNOT_LINE.match(line.strip())
        if match is None:
            raise ValueError(f"{path}:{lineno}: expected '<k>_DELIM_<text>', found {line[:60]!r}")
        texts[int(match.group(1))] = match.group(2).strip()
    return texts


@dataclass(frozen=True)
class ImageSource:
    """Where a segment's pixels come from: one clip (``"video"``) or sorted frame files (``"frames"``)."""

    kind: Literal["video", "frames"]
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class MosiSample:
    """One opinion segment: id ``V_k``, its score, and its modalities (``None`` where absent)."""

    id: str
    label: float
    text: str | None
    image: ImageSource | None


def build_index(
    root: str | os.PathLike[str],
    modalities: Iterable[str] = MODALITIES,
    *,
    labels_path: str | os.PathLike[str] | None = None,
    folds_path: str | os.PathLike[str] | None = None,
    words_path: str | os.PathLike[str] | None = None,
) -> dict[str, list[MosiSample]]:
    """Index a MOSI-layout dataset root into per-fold sample lists (segments in label-file order).

    Args:
        root: dataset root (layout in the module docstring).
        modalities: which of ``"text"``, ``"image"`` to look for; the others are marked absent
            (an empty list indexes the labels alone).
        labels_path: labels ``.csd`` (default ``<root>/CMU_MOSI_Opinion_Labels.csd``).
        folds_path: folds JSON; by default ``<root>/standard_folds.json`` where the root has one,
            else the SDK's standard folds (:func:`standard_folds`).
        words_path: take transcripts from this timestamped-words ``.csd`` instead of
            ``Transcript/Segmented`` (default: ``<root>/CMU_MOSI_TimestampedWords.csd`` when the root
            has no ``Transcript/Segmented``).

    A modality missing for a video or segment is marked absent (``None``); frames are preferred
    over clips when a segment has both, as they need no decoding.

    Raises:
        FileNotFoundError: ``root``, the labels or a given folds file is missing (the path looked at is named).
        ValueError: unknown modality, malformed files, a fold video without labels, or a root holding
            none of the requested modalities (probably the wrong directory).

    Example:
        >>> index = build_index("data/generated/mosi", modalities=["text"])  # doctest: +SKIP
        >>> {fold: len(samples) for fold, samples in index.items()}
        {'train': 1284, 'valid': 229, 'test': 686}
    """
    root = Path(root)
    wanted = _check_modalities(modalities)
    if not root.is_dir():
        raise FileNotFoundError(f"MOSI dataset root is not a directory: {root}")
    labels_path = Path(labels_path) if labels_path is not None else root / LABELS_FILENAME
    if not labels_path.is_file():
        raise FileNotFoundError(f"labels file not found: {labels_path} (pass labels_path= to use another)")
    if folds_path is None and (root / FOLDS_FILENAME).is_file():
        folds_path = root / FOLDS_FILENAME
    if folds_path is not None and not Path(folds_path).is_file():
        raise FileNotFoundError(f"folds file not found: {folds_path} (pass folds_path= to use another)")
    labels = read_opinion_labels(labels_path)
    folds = read_folds(folds_path) if folds_path is not None else standard_folds()
    folds_source = folds_path if folds_path is not None else "the SDK's standard folds"
    per_video = _segments_per_video(labels)
    missing = [v for fold in FOLDS for v in folds[fold] if v not in per_video]
    if missing:
        raise ValueError(
            f"{folds_source}: {len(missing)} fold videos have no labels in {labels_path}: {missing[:5]}"
            + ("" if folds_path is not None else " (not CMU-MOSI's labels? pass folds_path= for other videos)")
        )

    dirs = _modality_dirs(root)
    if words_path is None and dirs["transcripts"] is None and (root / WORDS_FILENAME).is_file():
        words_path = root / WORDS_FILENAME
    texts = _find_texts(dirs["transcripts"], words_path, labels_path) if "text" in wanted else None
    images = _find_images(dirs["frames"], dirs["clips"]) if "image" in wanted else None
    if texts is None and images is None and wanted:
        looked = {
            "text": [root / TRANSCRIPT_DIR, root / RAW_DIR / TRANSCRIPT_DIR, root / WORDS_FILENAME],
            "image": [root / FRAMES_DIR, root / VIDEO_DIR, root / RAW_DIR / FRAMES_DIR, root / RAW_DIR / VIDEO_DIR],
        }
        raise ValueError(
            f"{root} holds none of the requested modalities {sorted(wanted)}; looked for "
            + ", ".join(str(p) for m in sorted(wanted) for p in looked[m] if p is not None)
        )

    index: dict[str, list[MosiSample]] = {}
    for fold in FOLDS:
        samples = []
        for video in folds[fold]:
            video_texts = texts(video) if texts is not None else {}
            for k in range(1, per_video[video] + 1):
                sid = segment_id(video, k)
                samples.append(
                    MosiSample(
                        id=sid,
                        label=labels[sid],
                        text=video_texts.get(k),
                        image=images.get(sid) if images is not None else None,
                    )
                )
        index[fold] = samples
    return index


def _check_modalities(modalities: Iterable[str]) -> frozenset[str]:
    if isinstance(modalities, str):
        raise ValueError(f"modalities must be a list such as ['text'], got the string {modalities!r}")
    wanted = frozenset(modalities)
    unknown = wanted - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}, expected a subset of {list(MODALITIES)}")
    return wanted


def _segments_per_video(labels: dict[str, float]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sid in labels:
        video, _, _ = sid.rpartition("_")
        counts[video] = counts.get(video, 0) + 1
    return counts


def _modality_dirs(root: Path) -> dict[str, Path | None]:
    """Each modality folder in ``root``, else in ``root/Raw`` (the official zip's layout), else None."""
    found: dict[str, Path | None] = {}
    for key, rel in (("transcripts", TRANSCRIPT_DIR), ("frames", FRAMES_DIR), ("clips", VIDEO_DIR)):
        found[key] = next((d for d in (root / rel, root / RAW_DIR / rel) if d.is_dir()), None)
    return found


def _find_texts(
    transcript_dir: Path | None, words_path: str | os.PathLike[str] | None, labels_path: Path
) -> Callable[[str], dict[int, str]] | None:
    """Return ``video -> {k: text}`` lookup, or None when the root has no text source."""
    if words_path is not None:
        transcripts = read_word_transcripts(words_path, labels_path)
        by_video: dict[str, dict[int, str]] = {}
        for sid, text in transcripts.items():
            video, _, k = sid.rpartition("_")
            by_video.setdefault(video, {})[int(k)] = text
        return lambda video: by_video.get(video, {})
    if transcript_dir is None:
        return None

    def lookup(video: str) -> dict[int, str]:
        path = transcript_dir / f"{video}.annotprocessed"
        return read_annotprocessed(path) if path.is_file() else {}

    return lookup


def _find_images(frames_dir: Path | None, video_dir: Path | None) -> dict[str, ImageSource] | None:
    """Map segment id -> image source for every segment with frames or a clip; None if neither folder exists."""
    if frames_dir is None and video_dir is None:
        return None
    sources: dict[str, ImageSource] = {}
    if video_dir is not None:
        for entry in os.scandir(video_dir):
            if entry.is_file() and entry.name.endswith(".mp4"):
                sources[entry.name[: -len(".mp4")]] = ImageSource("video", (Path(entry.path),))
    if frames_dir is not None:
        for entry in os.scandir(frames_dir):
            if not entry.is_dir():
                continue
            files = sorted(p for p in Path(entry.path).iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
            if files:
                sources[entry.name] = ImageSource("frames", tuple(files))
    return sources
