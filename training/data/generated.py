"""The built-in sample dataset: a MOSI-like dataset generated from a seed, in MOSI's raw layout.

It exists so that every part of fusionrt can be trained and tested offline, on data where fusing
the two modalities provably matters. ``build_index`` reads it exactly like real MOSI::

    <out>/CMU_MOSI_Opinion_Labels.csd        labels, SDK layout and metadata (HDF5)
    <out>/CMU_MOSI_TimestampedWords.csd      the same words with timestamps (alternative text source)
    <out>/standard_folds.json                train / valid / test video ids
    <out>/Transcript/Segmented/<V>.annotprocessed
    <out>/Frames/<V>_<k>/0000.png            one drawn face per segment
    <out>/generation.json                    seed, sizes and the factors behind every score

How a segment's score is made (all draws from ``numpy.random.default_rng``):

1. **Text.** With probability 0.15 the utterance has no opinion word (text score ``t = 0``).
   Otherwise an adjective with valence ``v`` in {+-1 (good, nice, fun, ... / bad, dull, boring,
   ...), +-2 (great, brilliant, ... / awful, terrible, ...)} is drawn; an intensifier ("very",
   "really", "extremely", "so"; probability 0.4) multiplies it by 1.5 and a negation ("not",
   "never"; probability 0.3) by -1: ``t = v * 1.5**intensified * (-1)**negated`` in
   {0, +-1, +-1.5, +-2, +-3}. The words are put in a template with an aspect ("the plot", ...).
2. **Face.** An expression is drawn: smile (0.3), frown (0.3), neutral (0.2) or sarcastic (0.2;
   one raised eyebrow and a lopsided smirk). Smile adds ``+1.5``, frown ``-1.5``, neutral and
   sarcastic ``0``; a sarcastic face also *flips* the words' polarity.
3. **Score.** ``score = clip((-t if sarcastic else t) + face_shift, -3, 3)``, stored as float32.

So the text alone cannot see sarcasm or the face's shift (e.g. "good" + frown is negative) and the
image alone cannot see the words (a sarcastic face is positive or negative depending on them):
each modality alone stays well below a model that sees both. Pose (shift, tilt), face size,
skin / background colours, line widths and pixel noise vary and carry no label information.

How much they vary is the ``style`` (:data:`STYLES`); it changes only the pixels, never the texts,
expressions or scores above:

* ``"clean"`` (default): the face fills most of the frame on a plain light-grey background, with
  thick dark eyebrow / mouth strokes, at most 3 degrees of tilt and mild noise. A small vision net
  trained from random init learns the expressions in a few epochs, so the demo's image-only and
  fused models see the faces.
* ``"varied"``: random background and skin colours, a smaller face shifted by up to 6 % and tilted
  by up to 12 degrees, thin strokes and more noise (the original images). The expression cue is a
  few pixels among much clutter; nets trained from scratch learn little of it in the demo's budget.

Sizes follow MOSI's standard folds (52 / 10 / 31 videos, 1284 / 229 / 686 segments), multiplied by
``scale``. Output is byte-for-byte deterministic for a seed: every random draw of a segment comes
from a generator seeded by ``(seed, segment number)``, and HDF5 timestamps are off.

Command line::

    python -m training.data.generated --out data/generated/mosi [--seed 0] [--scale 1.0] [--image-size 64] \
        [--style clean|varied]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fusionrt.atomic import atomic_directory
from training.data.csd import ComputationalSequence, VideoSequence, write_computational_sequence
from training.data.mosi import (
    FOLDS,
    FOLDS_FILENAME,
    FRAMES_DIR,
    LABELS_FILENAME,
    TRANSCRIPT_DIR,
    WORDS_FILENAME,
    segment_id,
)

# MOSI's standard folds: videos and segments per fold.
MOSI_VIDEOS = {"train": 52, "valid": 10, "test": 31}
MOSI_SEGMENTS = {"train": 1284, "valid": 229, "test": 686}

POSITIVE = {
    "good": 1.0,
    "nice": 1.0,
    "fun": 1.0,
    "enjoyable": 1.0,
    "decent": 1.0,
    "great": 2.0,
    "brilliant": 2.0,
    "wonderful": 2.0,
    "amazing": 2.0,
    "fantastic": 2.0,
}
NEGATIVE = {
    "bad": -1.0,
    "dull": -1.0,
    "boring": -1.0,
    "weak": -1.0,
    "messy": -1.0,
    "awful": -2.0,
    "terrible": -2.0,
    "horrible": -2.0,
    "dreadful": -2.0,
    "atrocious": -2.0,
}
INTENSIFIERS = ("very", "really", "extremely", "so")
NEGATIONS = ("not", "never")
INTENSIFIER_FACTOR = 1.5
ASPECTS = ("movie", "plot", "acting", "ending", "soundtrack", "story", "cast", "dialogue", "pacing", "script")
OPINION_TEMPLATES = (
    "the {aspect} was {words}",
    "i thought the {aspect} was {words}",
    "honestly the {aspect} is {words}",
    "um the {aspect} was just {words}",
    "i have to say the {aspect} was {words}",
)
NEUTRAL_TEMPLATES = (
    "i watched the {aspect} last week",
    "so the {aspect} is about two hours long",
    "uh let me talk about the {aspect}",
    "the {aspect} came out this year",
)
P_NEUTRAL_TEXT, P_INTENSIFIER, P_NEGATION = 0.15, 0.4, 0.3

EXPRESSIONS = ("smile", "frown", "neutral", "sarcastic")
EXPRESSION_PROBS = (0.3, 0.3, 0.2, 0.2)
FACE_SHIFT = {"smile": 1.5, "frown": -1.5, "neutral": 0.0, "sarcastic": 0.0}
SCORE_RANGE = (-3.0, 3.0)
MANIFEST_FILENAME = "generation.json"


@dataclass(frozen=True)
class GeneratedSegment:
    """One generated segment and the factors its score was made from."""

    id: str
    fold: str
    text: str
    text_score: float
    expression: str
    score: float


def text_for(rng: np.random.Generator) -> tuple[str, float]:
    """Draw an utterance and its text score ``t`` (see the module docstring)."""
    aspect = ASPECTS[rng.integers(len(ASPECTS))]
    if rng.random() < P_NEUTRAL_TEXT:
        return NEUTRAL_TEMPLATES[rng.integers(len(NEUTRAL_TEMPLATES))].format(aspect=aspect), 0.0
    lexicon = POSITIVE if rng.random() < 0.5 else NEGATIVE
    adjective = list(lexicon)[rng.integers(len(lexicon))]
    score = lexicon[adjective]
    words = [adjective]
    if rng.random() < P_INTENSIFIER:
        words.insert(0, INTENSIFIERS[rng.integers(len(INTENSIFIERS))])
        score *= INTENSIFIER_FACTOR
    if rng.random() < P_NEGATION:
        words.insert(0, NEGATIONS[rng.integers(len(NEGATIONS))])
        score = -score
    template = OPINION_TEMPLATES[rng.integers(len(OPINION_TEMPLATES))]
    return template.format(aspect=aspect, words=" ".join(words)), score


def combine_score(text_score: float, expression: str) -> float:
    """The segment score: ``clip((-t if sarcastic else t) + FACE_SHIFT[expression], -3, 3)``."""
    if expression not in FACE_SHIFT:
        raise ValueError(f"expression is {expression!r}, expected one of {EXPRESSIONS}")
    polarity = -1.0 if expression == "sarcastic" else 1.0
    return float(np.clip(polarity * text_score + FACE_SHIFT[expression], *SCORE_RANGE))


@dataclass(frozen=True)
class FaceStyle:
    """How faces are drawn: ranges of the nuisance factors, none of which carries label information.

    Lengths are in a 100 x 100 drawing frame. ``feature_scale`` scales the eyebrow and mouth strokes'
    extent (not their width); a background of ``None`` is a random RGB colour, a pair ``(lo, hi)``
    a grey level drawn from it.
    """

    background: tuple[float, float] | None
    skin_gain: tuple[float, float]
    skin_jitter: float
    ink_max: int
    stroke_width: tuple[float, float]
    center_jitter: float
    face_rx: tuple[float, float]
    face_ry: tuple[float, float]
    feature_scale: float
    rotation: float  # degrees, uniform in +-rotation
    noise: tuple[float, float]  # pixel noise std range (0-255 scale)


STYLES = {
    # Learnable by a small vision net trained from scratch in a few epochs: the face fills the frame
    # on a plain light-grey background, strokes are thick and dark, pose and noise barely vary.
    "clean": FaceStyle(
        background=(185.0, 225.0),
        skin_gain=(0.85, 1.05),
        skin_jitter=6.0,
        ink_max=30,
        stroke_width=(6.0, 7.5),
        center_jitter=2.0,
        face_rx=(40.0, 44.0),
        face_ry=(44.0, 47.0),
        feature_scale=1.5,
        rotation=3.0,
        noise=(0.0, 3.0),
    ),
    # The original, harder images: random background and skin colours, thin strokes, a smaller face
    # shifted and tilted, more noise. Vision nets trained from random init learn little of it within
    # the demo's budget; kept for robustness experiments.
    "varied": FaceStyle(
        background=None,
        skin_gain=(0.45, 1.1),
        skin_jitter=12.0,
        ink_max=60,
        stroke_width=(2.5, 4.0),
        center_jitter=6.0,
        face_rx=(28.0, 36.0),
        face_ry=(34.0, 42.0),
        feature_scale=1.0,
        rotation=12.0,
        noise=(0.0, 10.0),
    ),
}
DEFAULT_STYLE = "clean"


def _style(style: str) -> FaceStyle:
    if style not in STYLES:
        raise ValueError(f"style is {style!r}, expected one of {tuple(STYLES)}")
    return STYLES[style]


def draw_face(expression: str, rng: np.random.Generator, size: int = 64, style: str = DEFAULT_STYLE) -> np.ndarray:
    """Draw a face with ``expression`` and random pose, colours and noise: (size, size, 3) uint8.

    ``style`` names a :data:`STYLES` entry (how much the nuisance factors vary). Drawn at twice the
    size and downsampled, for anti-aliased strokes.
    """
    if expression not in FACE_SHIFT:
        raise ValueError(f"expression is {expression!r}, expected one of {EXPRESSIONS}")
    st = _style(style)
    big = 2 * size
    u = big / 100.0  # drawing in a 100 x 100 frame, scaled to the canvas
    if st.background is None:
        background = tuple(int(c) for c in rng.integers(0, 256, 3))
    else:
        background = (int(rng.uniform(*st.background)),) * 3
    skin = tuple(
        int(c)
        for c in np.clip(np.array([225, 185, 150]) * rng.uniform(*st.skin_gain) + rng.normal(0, st.skin_jitter, 3), 0, 255)
    )
    ink = tuple(int(c) for c in rng.integers(0, st.ink_max, 3))
    width = max(1, round(u * rng.uniform(*st.stroke_width)))
    j = st.center_jitter
    cx, cy = 50 + rng.uniform(-j, j), 50 + rng.uniform(-j, j)
    rx, ry = rng.uniform(*st.face_rx), rng.uniform(*st.face_ry)
    k = st.feature_scale

    img = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(img)

    def box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [x0 * u, y0 * u, x1 * u, y1 * u]

    def line(points: list[tuple[float, float]]) -> None:
        draw.line([(x * u, y * u) for x, y in points], fill=ink, width=width, joint="curve")

    draw.ellipse(box(cx - rx, cy - ry, cx + rx, cy + ry), fill=skin)
    eye_dx, eye_y, eye_r = rx * 0.4, cy - ry * 0.25, rng.uniform(2.5, 4.0)
    side = 1 if rng.random() < 0.5 else -1  # which side a sarcastic face raises / lifts
    for s in (-1, 1):
        ex = cx + s * eye_dx
        draw.ellipse(box(ex - eye_r, eye_y - eye_r, ex + eye_r, eye_y + eye_r), fill=ink)
        brow_y = eye_y - 8 * k
        if expression == "frown":  # brows slanting down towards the nose
            line([(ex - s * 6 * k, brow_y + 3 * k), (ex + s * 6 * k, brow_y - 2 * k)])
        elif expression == "sarcastic" and s == side:  # one raised, arched brow
            line([(ex - 6 * k, brow_y - 5 * k), (ex, brow_y - 9 * k), (ex + 6 * k, brow_y - 5 * k)])
        else:
            line([(ex - 6 * k, brow_y), (ex + 6 * k, brow_y)])

    mw, my = k * rng.uniform(10, 15), cy + ry * 0.45
    if expression == "smile":
        draw.arc(box(cx - mw, my - 9 * k, cx + mw, my + 5 * k), 20, 160, fill=ink, width=width)
    elif expression == "frown":
        draw.arc(box(cx - mw, my, cx + mw, my + 14 * k), 200, 340, fill=ink, width=width)
    elif expression == "neutral":
        line([(cx - mw, my + 2 * k), (cx + mw, my + 2 * k)])
    else:  # smirk: flat on one side, pulled up on the other
        line([(cx - side * mw, my + 3 * k), (cx, my + 3 * k), (cx + side * mw, my - 4 * k)])

    angle = rng.uniform(-st.rotation, st.rotation)
    img = img.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=background)
    pixels = np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    pixels = pixels + rng.normal(0.0, rng.uniform(*st.noise), pixels.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _render(job: tuple[int, int, str, str, int, str, str]) -> None:
    """Draw and write one segment's frame; a job is (seed, segment number, id, expression, size, style, out)."""
    seed, number, sid, expression, size, style, out = job
    rng = np.random.default_rng([seed, number, 1])  # stream 1: pixels (stream 0 drew the factors)
    pixels = draw_face(expression, rng, size, style)
    frame = Path(out) / FRAMES_DIR / sid / "0000.png"
    frame.parent.mkdir(parents=True, exist_ok=True)
    frame.write_bytes(_png_bytes(pixels))


def _video_id(rng: np.random.Generator) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "".join(alphabet[i] for i in rng.integers(len(alphabet), size=11))


def _plan_folds(rng: np.random.Generator, scale: float) -> dict[str, list[tuple[str, int]]]:
    """Per fold: (video id, segment count) with MOSI's fold sizes times ``scale``."""
    plan: dict[str, list[tuple[str, int]]] = {}
    used: set[str] = set()
    for fold in FOLDS:
        n_videos = max(1, round(scale * MOSI_VIDEOS[fold]))
        n_segments = max(n_videos, round(scale * MOSI_SEGMENTS[fold]))
        counts = 1 + rng.multinomial(n_segments - n_videos, np.full(n_videos, 1.0 / n_videos))
        videos = []
        for count in counts:
            video = _video_id(rng)
            while video in used:
                video = _video_id(rng)
            used.add(video)
            videos.append((video, int(count)))
        plan[fold] = videos
    return plan


def _timed_words(
    text: str, start: float, rng: np.random.Generator
) -> tuple[list[str], list[tuple[float, float]], float]:
    """Timestamp an utterance's words from ``start``, with silences (``sp``) between some; returns the end."""
    words, intervals, t = [], [], start
    for word in text.split():
        duration = 0.15 + 0.06 * len(word) + rng.uniform(0.0, 0.1)
        words.append(word)
        intervals.append((t, t + duration))
        t += duration
        if rng.random() < 0.2:
            pause = rng.uniform(0.1, 0.4)
            words.append("sp")
            intervals.append((t, t + pause))
            t += pause
    return words, intervals, t


@dataclass
class _Draft:
    """Everything drawn for a dataset before anything is written."""

    segments: list[GeneratedSegment]
    labels: dict[str, VideoSequence]
    words: dict[str, VideoSequence]
    transcripts: dict[str, str]  # video -> .annotprocessed contents


def _draw(seed: int, plan: dict[str, list[tuple[str, int]]]) -> _Draft:
    draft = _Draft([], {}, {}, {})
    number = 0
    for fold in FOLDS:
        for video, count in plan[fold]:
            lines, scores, segment_intervals, video_words, word_intervals = [], [], [], [], []
            t = 0.0
            for k in range(1, count + 1):
                rng = np.random.default_rng([seed, number, 0])  # stream 0: factors and timing
                number += 1
                text, text_score = text_for(rng)
                expression = EXPRESSIONS[rng.choice(len(EXPRESSIONS), p=EXPRESSION_PROBS)]
                # Stored as float32 in the .csd: keep the intended score equal to what is read back.
                score = float(np.float32(combine_score(text_score, expression)))
                draft.segments.append(GeneratedSegment(segment_id(video, k), fold, text, text_score, expression, score))
                start = t + rng.uniform(0.2, 1.5)
                seg_words, seg_word_intervals, t = _timed_words(text, start, rng)
                video_words += seg_words
                word_intervals += seg_word_intervals
                segment_intervals.append((start, t))
                scores.append(score)
                lines.append(f"{k}_DELIM_{text}")
            draft.labels[video] = VideoSequence(
                np.array(scores, dtype=np.float32).reshape(-1, 1), np.array(segment_intervals, dtype=np.float32)
            )
            draft.words[video] = VideoSequence(
                np.array(video_words, dtype=object).reshape(-1, 1), np.array(word_intervals, dtype=np.float32)
            )
            draft.transcripts[video] = "\n".join(lines) + "\n"
    return draft


def _write(out: Path, draft: _Draft, plan: dict[str, list[tuple[str, int]]], seed: int, manifest: dict) -> None:
    """Write everything but the frames (into the staging directory that generate() publishes whole)."""
    (out / TRANSCRIPT_DIR).mkdir(parents=True, exist_ok=True)
    for video, contents in draft.transcripts.items():
        (out / TRANSCRIPT_DIR / f"{video}.annotprocessed").write_text(contents)
    label_root = "Opinion Segment Labels"
    write_computational_sequence(
        out / LABELS_FILENAME,
        ComputationalSequence(label_root, draft.labels, _metadata(label_root, seed, "sentiment score")),
    )
    write_computational_sequence(
        out / WORDS_FILENAME, ComputationalSequence("words", draft.words, _metadata("words", seed, "word"))
    )
    folds = {fold: [video for video, _ in plan[fold]] for fold in FOLDS}
    (out / FOLDS_FILENAME).write_text(json.dumps(folds, indent=1) + "\n")
    (out / MANIFEST_FILENAME).write_text(json.dumps(manifest, indent=1) + "\n")


def _render_frames(out: Path, draft: _Draft, seed: int, image_size: int, style: str, workers: int) -> None:
    jobs = [(seed, i, s.id, s.expression, image_size, style, str(out)) for i, s in enumerate(draft.segments)]
    if workers == 1:
        for job in jobs:
            _render(job)
    else:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_render, jobs, chunksize=64))


def generate(
    out: str | os.PathLike[str],
    seed: int = 0,
    scale: float = 1.0,
    image_size: int = 64,
    workers: int | None = None,
    style: str = DEFAULT_STYLE,
) -> list[GeneratedSegment]:
    """Generate the sample dataset into ``out`` (see the module docstring); returns its segments.

    The dataset is built in a hidden sibling directory and moved to ``out`` when complete, so
    ``out`` never holds a partial dataset or stale files of an earlier one.

    Args:
        out: output directory; if it exists it must be empty or an earlier generated dataset
            (it holds ``generation.json``), which is replaced.
        seed: the dataset is a pure function of ``seed``, ``scale``, ``image_size`` and ``style``.
        scale: fraction of MOSI's fold sizes (at least one video with one segment per fold).
        image_size: side of the square face images, in pixels.
        workers: processes drawing faces (default: CPU count; 1 draws in this process).
        style: how faces are drawn, a :data:`STYLES` name ("clean", the default, or "varied"); it
            changes only the pixels' nuisance factors, never the texts, expressions or scores.

    Raises:
        ValueError: bad ``scale`` / ``image_size`` / ``style``, or ``out`` holds something else.

    Example:
        >>> segments = generate("data/generated/mosi", seed=0, scale=0.1)  # doctest: +SKIP
        >>> len(segments)
        220
    """
    if not scale > 0:
        raise ValueError(f"scale is {scale}, expected > 0")
    if image_size < 8:
        raise ValueError(f"image_size is {image_size}, expected >= 8")
    _style(style)  # fail before anything is drawn
    out = Path(out)
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / MANIFEST_FILENAME).is_file())):
        raise ValueError(
            f"{out} exists and is not a generated dataset (no {MANIFEST_FILENAME}); refusing to replace it"
        )
    plan = _plan_folds(np.random.default_rng([seed]), scale)
    draft = _draw(seed, plan)
    manifest = {
        "seed": seed,
        "scale": scale,
        "image_size": image_size,
        "style": style,
        "sizes": {fold: sum(c for _, c in plan[fold]) for fold in FOLDS},
        "segments": [asdict(s) for s in draft.segments],
    }
    with atomic_directory(out, overwrite=True) as staging:
        _write(staging, draft, plan, seed, manifest)
        _render_frames(staging, draft, seed, image_size, style, workers or os.cpu_count() or 1)
    return draft.segments


def _metadata(root_name: str, seed: int, dimension: str) -> dict[str, str]:
    """SDK metadata fields, JSON-quoted like the real files' values."""
    fields = {
        "root name": root_name,
        "computational sequence description": f"Generated {root_name} (fusionrt sample data, seed {seed})",
        "computational sequence version": "1.0",
        "alignment compatible": True,
        "dataset name": "fusionrt generated MOSI-like sample",
        "dataset version": "1.0",
        "creator": "fusionrt.training.data.generated",
        "contact": "fusionrt",
        "featureset bib citation": "none",
        "dataset bib citation": "none",
        "dimension names": [dimension],
        "md5": None,
        "uuid": f"fusionrt-generated-{root_name}-{seed}",
    }
    return {key: json.dumps(value) for key, value in fields.items()}


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (``python -m training.data.generated``)."""
    parser = argparse.ArgumentParser(description="Generate fusionrt's MOSI-like sample dataset.")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of MOSI's fold sizes")
    parser.add_argument("--image-size", type=int, default=64, help="side of the face images in pixels")
    parser.add_argument("--workers", type=int, default=None, help="processes drawing faces (default: all CPUs)")
    parser.add_argument(
        "--style",
        choices=tuple(STYLES),
        default=DEFAULT_STYLE,
        help="how faces are drawn: clean (large face, plain background, thick strokes; learnable from scratch) "
        "or varied (random colours, pose, thin strokes, more noise); scores are the same",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    segments = generate(args.out, args.seed, args.scale, args.image_size, args.workers, args.style)
    sizes = {fold: sum(s.fold == fold for s in segments) for fold in FOLDS}
    print(f"wrote {len(segments)} segments {sizes} to {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
