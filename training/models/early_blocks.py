"""Early fusion: both token streams joined into one sequence and run through transformer blocks."""

from __future__ import annotations

import torch
from torch import nn

from .attention import MultiHeadAttention
from .stream import Stream, masked_mean


class FusionBlock(nn.Module):
    """Pre-LayerNorm transformer block (self-attention + MLP) over a padded token sequence."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = MultiHeadAttention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * width, width), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, mask)
        return x + self.mlp(self.norm2(x))


class EarlyFusionEncoder(nn.Module):
    """Projects text and image tokens to one width, adds modality embeddings, attends over both.

    Returns the two modalities' segments of the fused sequence as streams (pooled by masked mean).

    Example:
        >>> enc = EarlyFusionEncoder(32, 24, hidden_size=16, layers=1, heads=2, dropout=0.0)
        >>> s = lambda w, n: Stream(torch.randn(2, n, w), torch.ones(2, n, dtype=torch.bool), torch.randn(2, w))
        >>> [x.tokens.shape[1] for x in enc(s(32, 7), s(24, 4))]
        [7, 4]
    """

    def __init__(
        self, text_width: int, image_width: int, hidden_size: int, layers: int, heads: int, dropout: float
    ) -> None:
        super().__init__()
        self.text_proj = nn.Linear(text_width, hidden_size)
        self.image_proj = nn.Linear(image_width, hidden_size)
        self.modality_embedding = nn.Parameter(torch.randn(2, hidden_size) * 0.02)
        self.blocks = nn.ModuleList(FusionBlock(hidden_size, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, text: Stream, image: Stream) -> tuple[Stream, Stream]:
        t = self.text_proj(text.tokens) + self.modality_embedding[0]
        i = self.image_proj(image.tokens) + self.modality_embedding[1]
        x = torch.cat([t, i], dim=1)
        mask = torch.cat([text.mask, image.mask], dim=1)
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        t, i = x[:, : t.shape[1]], x[:, t.shape[1] :]
        return Stream(t, text.mask, masked_mean(t, text.mask)), Stream(i, image.mask, masked_mean(i, image.mask))
