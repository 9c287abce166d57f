"""Prediction head: fused features -> sentiment score (+ optional class logits)."""

from __future__ import annotations

import torch
from torch import nn

from fusionrt.graph_io import LOGITS, SCORE, output_name


class PredictionHead(nn.Module):
    """Two-layer MLP producing ``(batch, 1 + num_classes)``: column 0 the score, the rest class logits.

    Example:
        >>> PredictionHead(64, hidden_size=32, num_classes=2, dropout=0.1)(torch.randn(4, 64)).shape
        torch.Size([4, 3])
    """

    def __init__(self, in_features: int, hidden_size: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(in_features, hidden_size),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, 1 + num_classes),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def split_prediction(prediction: torch.Tensor, num_classes: int, branch: str | None = None) -> dict[str, torch.Tensor]:
    """``(batch, 1 + num_classes)`` -> the graph outputs of ``branch`` (None: the fused prediction), named
    by the I/O contract: ``{"score": (batch,), "logits": (batch, num_classes)}``, ``{"score_text": ...}``."""
    out = {output_name(SCORE, branch): prediction[:, 0]}
    if num_classes:
        out[output_name(LOGITS, branch)] = prediction[:, 1:]
    return out
