"""The two paths measured on a session, shared by ``fusionrt bench`` and the pytest suite so both time
the same thing: the graph alone (:func:`graph_call`) and raw text + images end to end (:func:`end_to_end_call`).

Example:
    >>> session = fusionrt.load("bundle", backend="onnxruntime")  # doctest: +SKIP
    >>> call = graph_call(session, batch=8)  # doctest: +SKIP
    >>> call()["score"].shape  # doctest: +SKIP
    (8,)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..feeds import random_feeds

if TYPE_CHECKING:
    from ..session import Session

#: Raw images end to end are camera-sized frames (height, width), resized by the bundle's pre-processing.
DEFAULT_IMAGE_HW = (480, 640)

# Sentences of review length, so tokenisation does real work (and truncation at the bundle's length).
_SENTENCES = (
    "what a wonderful, moving film; the acting felt honest and the ending stayed with me for days",
    "i honestly did not expect much but the story kept surprising me right up to the last scene",
    "the plot dragged in the middle and none of the characters were given anything to do",
    "visually stunning, although the dialogue was clumsy and the pacing uneven at times",
)


def raw_inputs(
    batch: int, image_hw: tuple[int, int] = DEFAULT_IMAGE_HW, seed: int = 0
) -> tuple[list[str], list[np.ndarray]]:
    """``batch`` review-like strings and HWC uint8 RGB frames of ``image_hw``.

    Example:
        >>> texts, images = raw_inputs(2, (48, 64))
        >>> len(texts), images[0].shape, images[0].dtype
        (2, (48, 64, 3), dtype('uint8'))
    """
    rng = np.random.default_rng(seed)
    texts = [_SENTENCES[i % len(_SENTENCES)] for i in range(batch)]
    images = [rng.integers(0, 256, (*image_hw, 3), dtype=np.uint8) for _ in range(batch)]
    return texts, images


def graph_call(session: Session, batch: int, seed: int = 0) -> Callable[[], Any]:
    """``session.run`` on fixed random feeds of ``batch`` samples (every modality present)."""
    feeds = random_feeds(session.manifest, batch, seed)
    return lambda: session.run(feeds)


def end_to_end_call(session: Session, batch: int, image_hw: tuple[int, int] = DEFAULT_IMAGE_HW,
                    seed: int = 0) -> Callable[[], Any]:
    """``session.predict`` on raw strings and frames: tokenizer, image pre-processing and graph."""
    texts, images = raw_inputs(batch, image_hw, seed)
    return lambda: session.predict(text=texts, image=images)


def with_delay(fn: Callable[[], Any], delay_ms: float) -> Callable[[], Any]:
    """``fn`` preceded by a sleep of ``delay_ms`` (test-only: makes a run slower on purpose, so tests
    can show a regression fails the comparison); ``fn`` itself when ``delay_ms`` is 0."""
    if delay_ms <= 0:
        return fn
    seconds = delay_ms / 1e3

    def delayed() -> Any:
        time.sleep(seconds)
        return fn()

    return delayed
