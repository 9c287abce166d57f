"""PyTorch side of CMU-MOSI: :class:`MosiDataset` (one dict per segment) and :class:`MosiCollator`.

This is the only module of ``training.data`` that imports torch; the index it reads
(:func:`training.data.mosi.build_index`) is plain data.

Example:
    >>> from training.data.mosi import build_index
    >>> index = build_index("data/generated/mosi")  # doctest: +SKIP
    >>> ds = MosiDataset(index["train"], FrameSampling(size=(64, 64)), cache_dir="cache")  # doctest: +SKIP
    >>> collate = MosiCollator(tokenizer, max_length=64, image_size=(64, 64))  # doctest: +SKIP
    >>> loader = torch.utils.data.DataLoader(ds, batch_size=32, collate_fn=collate)  # doctest: +SKIP
    >>> batch = next(iter(loader))  # doctest: +SKIP
    >>> batch["input_ids"].shape, batch["image"].shape, batch["presence"].shape
    (torch.Size([32, 64]), torch.Size([32, 3, 64, 64]), torch.Size([32, 2]))
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from training.data.frames import FrameSampling, load_segment_image
from training.data.mosi import MosiSample

# ImageNet statistics: what timm / torchvision image backbones expect by default.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_SAMPLING = FrameSampling()  # frozen, so one shared default is safe


class MosiDataset(Dataset):
    """Segments as dicts: ``{"id", "text", "image", "label", "has_text", "has_image"}``.

    ``image`` is a float32 (3, H, W) tensor, ``(pixel / 255 - mean) / std``, or ``None`` when the
    segment has no image; ``text`` is the transcript or ``None``.

    Args:
        samples: one fold of :func:`training.data.mosi.build_index`.
        sampling: how frames become one image (mode, frame count, output size).
        mean, std: per-channel normalisation, in [0, 1] pixel units.
        cache_dir: where decoded images are cached (``None``: decode every time).
    """

    def __init__(
        self,
        samples: Sequence[MosiSample],
        sampling: FrameSampling = DEFAULT_SAMPLING,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got {len(mean)} and {len(std)}")
        if min(std) <= 0:
            raise ValueError(f"std values must be > 0, got {tuple(std)}")
        self.samples = list(samples)
        self.sampling = sampling
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.cache_dir = cache_dir

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = self.samples[i]
        image = None
        if sample.image is not None:
            pixels = load_segment_image(sample.id, sample.image, self.sampling, self.cache_dir)
            image = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).float().div_(255.0)
            image = (image - self.mean) / self.std
        return {
            "id": sample.id,
            "text": sample.text,
            "image": image,
            "label": float(sample.label),
            "has_text": sample.text is not None,
            "has_image": image is not None,
        }


class MosiCollator:
    """Collate :class:`MosiDataset` items into a batch of tensors.

    Returns ``{"id": list[str], "input_ids": (B, L) int64, "attention_mask": (B, L) int64,
    "image": (B, 3, H, W) float32, "presence": (B, 2) bool [text, image], "label": (B,) float32}``.

    Absent images are zeros and absent texts are tokenised as ``""``: the tokenizer's special
    tokens keep at least one attended position, so attention over an absent text stays finite;
    ``presence`` is what tells the model to ignore it.

    Args:
        tokenizer: a ``tokenizers.Tokenizer``, or a callable following the Hugging Face convention
            ``tokenizer(texts, padding="max_length", truncation=True, max_length=L)`` returning a
            mapping with ``"input_ids"`` (and optionally ``"attention_mask"``) — e.g. any
            ``transformers`` tokenizer. ``None`` leaves ``input_ids``/``attention_mask`` out (image-only).
        max_length: tokens per text, after padding / truncation.
        image_size: (H, W) of the zeros used when no item of a batch has an image; ``None`` leaves
            ``image`` out of such batches.
    """

    def __init__(
        self,
        tokenizer: Any | None,
        max_length: int = 64,
        image_size: tuple[int, int] | None = None,
    ) -> None:
        if max_length < 1:
            raise ValueError(f"max_length is {max_length}, expected >= 1")
        fast = _fast_tokenizer_class()
        if fast is not None and isinstance(tokenizer, fast):
            tokenizer = _configured_copy(tokenizer, max_length)
        elif tokenizer is not None and not callable(tokenizer):
            raise TypeError(f"tokenizer must be a tokenizers.Tokenizer or a callable, got {type(tokenizer).__name__}")
        # Plain attributes only (no closures): DataLoader workers may pickle the collator.
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.image_size = image_size

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not batch:
            raise ValueError("cannot collate an empty batch")
        out: dict[str, Any] = {"id": [item["id"] for item in batch]}
        has_text = [item["text"] is not None for item in batch]
        has_image = [item["image"] is not None for item in batch]
        if self.tokenizer is not None:
            ids, mask = self._encode([item["text"] if item["text"] is not None else "" for item in batch])
            out["input_ids"] = torch.as_tensor(ids, dtype=torch.int64)
            out["attention_mask"] = torch.as_tensor(mask, dtype=torch.int64)
        elif any(has_text):
            raise ValueError("batch has texts but the collator has no tokenizer")
        images = self._stack_images(batch, has_image)
        if images is not None:
            out["image"] = images
        out["presence"] = torch.tensor(list(zip(has_text, has_image, strict=True)), dtype=torch.bool).view(
            len(batch), 2
        )
        out["label"] = torch.tensor([item["label"] for item in batch], dtype=torch.float32)
        return out

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask)``, both (len(texts), max_length) int64."""
        fast = _fast_tokenizer_class()
        if fast is not None and isinstance(self.tokenizer, fast):
            encodings = self.tokenizer.encode_batch(texts)
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        else:
            encoded = self.tokenizer(texts, padding="max_length", truncation=True, max_length=self.max_length)
            ids = np.asarray(encoded["input_ids"], dtype=np.int64)
            mask = np.asarray(encoded["attention_mask"], dtype=np.int64) if "attention_mask" in encoded else None
            mask = np.ones_like(ids) if mask is None else mask
        if ids.shape != (len(texts), self.max_length) or mask.shape != ids.shape:
            raise ValueError(
                f"tokenizer returned input_ids {ids.shape} and attention_mask {mask.shape}, "
                f"expected ({len(texts)}, {self.max_length}) each"
            )
        return ids, mask

    def _stack_images(self, batch: Sequence[Mapping[str, Any]], has_image: list[bool]) -> torch.Tensor | None:
        present = [item["image"] for item in batch if item["image"] is not None]
        if present:
            shape = present[0].shape
            for item in batch:
                if item["image"] is not None and item["image"].shape != shape:
                    raise ValueError(
                        f"image of {item['id']} has shape {tuple(item['image'].shape)}, expected {tuple(shape)}"
                    )
        elif self.image_size is not None:
            shape = (3, *self.image_size)
        else:
            return None
        zeros = torch.zeros(shape, dtype=torch.float32)
        return torch.stack(
            [item["image"] if present_ else zeros for item, present_ in zip(batch, has_image, strict=True)]
        )


def _fast_tokenizer_class() -> type | None:
    try:
        from tokenizers import Tokenizer
    except ImportError:  # only transformers-style callables can be used then
        return None
    return Tokenizer


def _configured_copy(tokenizer: Any, max_length: int) -> Any:
    """A copy of a ``tokenizers.Tokenizer`` that truncates and pads to ``max_length``.

    A copy, because truncation and padding are tokenizer state and the caller's must not change.
    """
    tok = type(tokenizer).from_str(tokenizer.to_str())
    tok.enable_truncation(max_length)  # keeps the post-processor's special tokens
    pad = tokenizer.padding or {}
    pad_token = pad.get("pad_token", "[PAD]")
    pad_id = pad.get("pad_id", tok.token_to_id(pad_token) or 0)  # any id works where the mask is 0
    tok.enable_padding(length=max_length, pad_id=pad_id, pad_token=pad_token)
    return tok
