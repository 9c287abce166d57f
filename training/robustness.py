"""Robustness of a deployed model: its test fold scored with a modality missing and under graded corruption.

The study (:mod:`training.study`) scores every model, through the session it deploys with, under these
conditions:

==============  =================================================================================
both            the clean test fold (the reference)
text only       the image absent for every sample (zeros, ``presence`` False: the bundle's own
                missing-modality path, as ``Session.predict(image=None)`` sends it)
image only      the text absent for every sample (zero ids under a mask of ones, ``presence`` False)
image noise     Gaussian noise of standard deviation ``level`` on the raw pixels in [0, 1]
image blur      Gaussian blur of standard deviation ``level`` pixels (at the model's image size)
word dropout    each word of the transcript dropped with probability ``level``
==============  =================================================================================

Corruptions act on the raw inputs, before the pre-processing a deployment would run: the image as
pixels in [0, 1] (noise and blur are clipped there and re-quantised to 8 bits, as a corrupted image
file would be, then normalised again), the text as words before tokenisation. Every draw is seeded
by ``(seed, condition, level, sample id)``, so a rerun, another model or another batch size sees the
same corrupted fold. Level 0 is the clean input exactly.

Example:
    >>> [c.label for c in conditions(RobustnessSettings(noise=[0.1], blur=[], word_dropout=[0.5]))]
    ['both', 'text only', 'image only', 'image noise 0.1', 'word dropout 0.5']
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fusionrt.graph_io import ATTENTION_MASK, INPUT_IDS, PIXELS
from training.checks import require_at_least
from training.tables import lookup

CLEAN = "both"
TEXT_ONLY = "text only"
IMAGE_ONLY = "image only"
NOISE = "image noise"
BLUR = "image blur"
WORD_DROPOUT = "word dropout"


@dataclass
class RobustnessSettings:
    """The study's ``robustness`` section: the corruption levels (three each by default) and the seed.

    ``enabled: false`` leaves robustness out of the study (the report then has no robustness table).
    """

    enabled: bool = True
    noise: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.4])
    blur: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0])
    word_dropout: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])
    seed: int = 0
    #: Score the first ``samples`` of the test fold (None: all of it): 12 conditions are 12 passes per model.
    samples: int | None = None
    #: Batch of the scoring calls (larger than latency's batch 1: throughput is what matters here).
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.samples is not None:
            require_at_least("robustness.samples", self.samples, 1)
        require_at_least("robustness.batch_size", self.batch_size, 1)
        for name in ("noise", "blur", "word_dropout"):
            levels = getattr(self, name)
            if not isinstance(levels, list) or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                                   for v in levels):
                raise TypeError(f"robustness.{name} is {levels!r}, expected a list of numbers")
            setattr(self, name, [float(v) for v in levels])
            for level in getattr(self, name):
                require_at_least(f"robustness.{name} level", level, 0.0)
        if any(p > 1.0 for p in self.word_dropout):
            raise ValueError(f"robustness.word_dropout levels are {self.word_dropout}, expected probabilities <= 1")


@dataclass(frozen=True)
class Condition:
    """One test condition: a kind (a name of :data:`KINDS`) and its level (0 for the three plain ones)."""

    kind: str
    level: float = 0.0

    @property
    def label(self) -> str:
        """Column name: ``both``, ``text only``, ``image noise 0.2``."""
        return self.kind if self.kind in (CLEAN, TEXT_ONLY, IMAGE_ONLY) else f"{self.kind} {self.level:g}"

    @property
    def needs(self) -> tuple[str, ...]:
        """The modalities a model must have for this condition to leave it any input."""
        return lookup(KINDS, self.kind, "robustness condition").needs


def conditions(settings: RobustnessSettings) -> list[Condition]:
    """Every condition of the settings, in table order: both, text only, image only, then the graded ones."""
    graded = [Condition(kind, level) for kind, levels in ((NOISE, settings.noise), (BLUR, settings.blur),
                                                          (WORD_DROPOUT, settings.word_dropout)) for level in levels]
    return [Condition(CLEAN), Condition(TEXT_ONLY), Condition(IMAGE_ONLY), *graded]


# --- corruptions of one raw input ---------------------------------------------------------------------

def rng_for(seed: int, condition: Condition, sample_id: str) -> np.random.Generator:
    """The generator of one sample's draws under one condition (independent of batch and order)."""
    kind = zlib.crc32(condition.kind.encode())
    return np.random.default_rng([seed, kind, round(condition.level * 1_000_000), zlib.crc32(sample_id.encode())])


def add_noise(pixels: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """``pixels`` (values in [0, 1]) plus Gaussian noise of standard deviation ``std``, clipped to [0, 1]."""
    return np.clip(pixels + rng.normal(0.0, std, pixels.shape), 0.0, 1.0) if std > 0 else pixels


def blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """``(3, H, W)`` ``pixels`` blurred by a Gaussian of ``sigma`` pixels: kernel radius ``ceil(3 sigma)``
    (capped by the image), edges reflected, as torchvision's ``gaussian_blur``. Separable, in numpy:
    a thousand small images take milliseconds (torchvision's per-image call costs ~30 ms each here)."""
    if sigma <= 0:
        return pixels
    height, width = pixels.shape[-2:]
    radius = min(math.ceil(3 * sigma), min(height, width) - 1)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(pixels.dtype if pixels.dtype == np.float32 else np.float64)
    padded = np.pad(pixels, [(0, 0)] * (pixels.ndim - 2) + [(radius, radius)] * 2, mode="reflect")
    rows = sum(t * padded[..., j:j + height, :] for j, t in enumerate(taps))
    return sum(t * rows[..., :, j:j + width] for j, t in enumerate(taps))


def drop_words(text: str, p: float, rng: np.random.Generator) -> str:
    """``text`` with each whitespace-separated word dropped with probability ``p`` (the rest in order)."""
    words = text.split()
    kept = rng.random(len(words)) >= p
    return " ".join(w for w, keep in zip(words, kept, strict=True) if keep)


def quantise(pixels: np.ndarray) -> np.ndarray:
    """Pixels in [0, 1] on the 8-bit grid, as an image file would store them."""
    return np.round(np.clip(pixels, 0.0, 1.0) * 255.0) / 255.0


# --- the test fold under one condition -----------------------------------------------------------------

@dataclass(frozen=True)
class _Kind:
    needs: tuple[str, ...]
    #: Corrupts one dataset item's raw input (None: the condition acts on whole batches instead).
    item: Callable[[dict[str, Any], float, np.random.Generator, Any], dict[str, Any]] | None = None
    #: Input keys of a collated batch to drop (the modality absent for every sample).
    absent: tuple[str, ...] = ()


def _noise_item(item: dict[str, Any], level: float, rng: np.random.Generator, norm: Any) -> dict[str, Any]:
    return _on_pixels(item, norm, lambda raw: add_noise(raw, level, rng))


def _blur_item(item: dict[str, Any], level: float, rng: np.random.Generator, norm: Any) -> dict[str, Any]:
    return _on_pixels(item, norm, lambda raw: blur(raw, level))


def _dropout_item(item: dict[str, Any], level: float, rng: np.random.Generator, norm: Any) -> dict[str, Any]:
    return item if item["text"] is None else {**item, "text": drop_words(item["text"], level, rng)}


def _on_pixels(item: dict[str, Any], norm: tuple[torch.Tensor, torch.Tensor],
               corrupt: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
    """Applies ``corrupt`` to the item's image as raw pixels in [0, 1] (undoing and redoing the
    dataset's normalisation)."""
    if item["image"] is None:
        return item
    mean, std = norm
    raw = quantise((item["image"] * std + mean).numpy().astype(np.float64))
    corrupted = torch.from_numpy(quantise(corrupt(raw)).astype(np.float32))
    return {**item, "image": (corrupted - mean) / std}


#: What each condition does: which modalities it needs, how it corrupts an item or which inputs it removes.
KINDS: dict[str, _Kind] = {
    CLEAN: _Kind(needs=()),
    TEXT_ONLY: _Kind(needs=("text",), absent=(PIXELS,)),
    IMAGE_ONLY: _Kind(needs=("image",), absent=(INPUT_IDS, ATTENTION_MASK)),
    # A model without the corrupted modality still has its other input: scored, it shows it is unaffected.
    NOISE: _Kind(needs=(), item=_noise_item),
    BLUR: _Kind(needs=(), item=_blur_item),
    WORD_DROPOUT: _Kind(needs=(), item=_dropout_item),
}


class CorruptedFold(Dataset):
    """A test fold's items (a :class:`~training.data.dataset.MosiDataset` or a ``Subset`` of one) with
    one condition's corruption applied to each, seeded per sample."""

    def __init__(self, items: Dataset | Sequence[dict[str, Any]], condition: Condition, seed: int,
                 norm: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """``norm``: the dataset's ``(mean, std)`` images are normalised with (default: the dataset's own;
        required when ``items`` is a list of items)."""
        self.items = items
        self.condition = condition
        self.seed = seed
        self.kind = lookup(KINDS, condition.kind, "robustness condition")
        if norm is None:
            base = items.dataset if hasattr(items, "dataset") else items  # the MosiDataset under a Subset
            norm = (base.mean, base.std)
        self.norm = norm

    def __len__(self) -> int:
        return len(self.items)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.items[i]
        if self.kind.item is None:
            return item
        return self.kind.item(item, self.condition.level, rng_for(self.seed, self.condition, item["id"]), self.norm)


class TestFold:
    """A test loader's items decoded once, so that every condition re-reads memory, not image files."""

    def __init__(self, loader: DataLoader, samples: int | None = None, batch_size: int | None = None) -> None:
        """The first ``samples`` items of ``loader``'s fold (None: all), batched by ``batch_size`` (None:
        the loader's batch size)."""
        dataset = loader.dataset
        base = dataset.dataset if hasattr(dataset, "dataset") else dataset  # the MosiDataset under a Subset
        size = len(dataset) if samples is None else min(samples, len(dataset))
        self.items = [dataset[i] for i in range(size)]
        self.norm = (base.mean, base.std)
        self.batch_size = loader.batch_size if batch_size is None else batch_size
        self.collate = loader.collate_fn

    def batches(self, condition: Condition, seed: int) -> Iterator[dict[str, Any]]:
        """The fold's batches under ``condition``: items corrupted before collation (so the text is
        tokenised after word dropout), an absent modality's inputs removed from each batch (which
        :func:`training.export.graph_io.batch_feeds` turns into the bundle's absent feeds)."""
        kind = lookup(KINDS, condition.kind, "robustness condition")
        items = CorruptedFold(self.items, condition, seed, self.norm)
        for start in range(0, len(items), self.batch_size):
            batch = self.collate([items[i] for i in range(start, min(start + self.batch_size, len(items)))])
            yield {k: v for k, v in batch.items() if k not in kind.absent}


def condition_batches(loader: DataLoader, condition: Condition, seed: int) -> Iterator[dict[str, Any]]:
    """The clean test ``loader``'s batches under ``condition`` (:meth:`TestFold.batches`); to score
    several conditions, make one :class:`TestFold` and call its ``batches``."""
    return TestFold(loader).batches(condition, seed)


def applies(condition: Condition, modalities: Sequence[str]) -> str | None:
    """Why ``condition`` cannot score a model of these ``modalities`` (it would leave it no input), or None."""
    missing = [m for m in condition.needs if m not in modalities]
    return f"the model has no {missing[0]} input" if missing else None
