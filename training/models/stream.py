"""The unit passed between encoders, placeholders and fusion operators: one modality's features."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Stream(NamedTuple):
    """Features of one modality at one point of its backbone.

    Attributes:
        tokens: ``(batch, length, width)`` token features (text tokens, image patches or CNN positions).
        mask: ``(batch, length)`` bool, True where a token is real (False: padding or absent modality).
        pooled: ``(batch, width)`` one vector per sample (BERT CLS / pooler, the vision global pool, ...).
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor

    @property
    def width(self) -> int:
        """Feature width shared by ``tokens`` and ``pooled``."""
        return self.pooled.shape[-1]


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``tokens`` (batch, length, width) over positions where ``mask`` is True; 0 where none is."""
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    # clamp: a row with no valid token divides 0 by 1 instead of producing NaN.
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
