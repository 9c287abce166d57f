"""The one attention function of the fusion layers (early / hybrid blocks and the cross-attention operator).

Every attention in ``training.models`` goes through :func:`attention`, which is fusionrt's fused
kernel (``torch.ops.fusionrt.multihead_attention``): it trains, exports to ONNX (standard ops or one
TensorRT plugin node) and runs the same arithmetic on CPU and GPU.
"""

from __future__ import annotations

import torch
from torch import nn

from fusionrt.ops import multihead_attention


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    """Scaled dot-product attention with a key padding mask.

    Args:
        q: ``(batch, heads, Lq, head_dim)``; k, v: ``(batch, heads, Lk, head_dim)``.
        key_padding_mask: ``(batch, Lk)`` bool, True where a key may be attended to.
        scale: Softmax scale, ``1/sqrt(head_dim)`` when None.

    Returns:
        ``(batch, heads, Lq, head_dim)``. Rows whose keys are all masked are zeros, not NaN.

    Example:
        >>> q = k = v = torch.randn(2, 4, 5, 8)
        >>> attention(q, k, v, torch.zeros(2, 5, dtype=torch.bool)).abs().max().item()
        0.0
    """
    return multihead_attention(q, k, v, key_padding_mask, scale)


class MultiHeadAttention(nn.Module):
    """Multi-head attention of ``query`` tokens over ``key_value`` tokens (self- or cross-attention).

    Example:
        >>> mha = MultiHeadAttention(width=32, heads=4)
        >>> x = torch.randn(2, 7, 32)
        >>> mha(x, x, torch.ones(2, 7, dtype=torch.bool)).shape
        torch.Size([2, 7, 32])
    """

    def __init__(self, width: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.out = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key_value: torch.Tensor, key_padding_mask: torch.Tensor) -> torch.Tensor:
        """query ``(batch, Lq, width)``, key_value ``(batch, Lk, width)``, mask ``(batch, Lk)`` -> ``(batch, Lq, width)``."""
        out = attention(self._split(self.q(query)), self._split(self.k(key_value)), self._split(self.v(key_value)),
                        key_padding_mask)
        return self.dropout(self.out(out.transpose(1, 2).flatten(2)))
