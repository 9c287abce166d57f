"""Learned stand-ins for a missing (or dropped) modality."""

from __future__ import annotations

import torch
from torch import nn

from .stream import Stream


class ModalityPlaceholder(nn.Module):
    """One learned vector that replaces a modality's features where it is absent.

    An absent sample becomes a one-token stream: the placeholder is its first token (the rest are
    masked out) and its pooled vector. :meth:`full` (whole batch absent, backbone not run) and
    :meth:`fill` (some samples absent) therefore give the same fused result.

    Example:
        >>> ph = ModalityPlaceholder(8)
        >>> ph.full(3).tokens.shape
        torch.Size([3, 1, 8])
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.randn(width) * 0.02)

    def full(self, batch: int) -> Stream:
        """A stream for a batch where the modality is absent for every sample."""
        # A stride-0 view: the fused kernels read broadcast rows in place.
        pooled = self.embedding.expand(batch, -1)
        mask = torch.ones(batch, 1, dtype=torch.bool, device=pooled.device)
        return Stream(pooled[:, None], mask, pooled)

    def fill(self, stream: Stream, present: torch.Tensor) -> Stream:
        """Replaces the samples of ``stream`` where ``present`` ``(batch,)`` bool is False."""
        keep = present[:, None]
        first = torch.where(keep[:, :, None], stream.tokens[:, :1], self.embedding)
        tokens = torch.cat([first, stream.tokens[:, 1:]], dim=1)
        only_first = torch.arange(stream.mask.shape[1], device=stream.mask.device) == 0
        # Logical ops, not torch.where: ONNX Runtime has no Where kernel for bool tensors.
        mask = (stream.mask & keep) | (only_first & ~keep)
        pooled = torch.where(keep, stream.pooled, self.embedding)
        return Stream(tokens, mask, pooled)
