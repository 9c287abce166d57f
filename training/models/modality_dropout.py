"""Modality dropout: randomly hides a modality per training sample so the model learns to do without it."""

from __future__ import annotations

import torch
from torch import nn


class ModalityDropout(nn.Module):
    """Drops text / image per sample with probabilities ``p_text`` / ``p_image`` in training mode.

    Draws are independent; a sample that would be left with no modality keeps the ones it had
    (a sample with nothing to see teaches only a bias). With both modalities given, text is thus
    dropped with probability ``p_text * (1 - p_image)``. Identity in eval mode.

    Example:
        >>> drop = ModalityDropout(0.5, 0.0).train()
        >>> drop(torch.ones(4, 2, dtype=torch.bool))[:, 1].all().item()
        True
    """

    def __init__(self, p_text: float, p_image: float) -> None:
        super().__init__()
        self.p_text = p_text
        self.p_image = p_image

    def forward(self, presence: torch.Tensor) -> torch.Tensor:
        """``(batch, 2)`` bool presence (text, image) -> presence after dropout."""
        if not self.training or (self.p_text == 0.0 and self.p_image == 0.0):
            return presence
        p = torch.tensor([self.p_text, self.p_image], device=presence.device)
        kept = presence & (torch.rand(presence.shape, device=presence.device) >= p)
        return torch.where(kept.any(dim=1, keepdim=True), kept, presence)

    def extra_repr(self) -> str:
        return f"p_text={self.p_text}, p_image={self.p_image}"
