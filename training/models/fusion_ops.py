"""Fusion operators: join the streams of several modalities (or fusion points) into one vector.

All operators take a list of :class:`Stream` and return ``(batch, out_features)``. concat, sum and
gated join the pooled vectors; cross_attention lets each stream's tokens attend to the others'.
:data:`OPERATOR_CLASSES` maps each ``FusionConfig.operator`` name to its class; a new operator is a
class decorated with ``@register_operator("name")`` taking ``(widths, hidden_size, heads, dropout)``.

Example:
    >>> op = build_operator("gated", widths=[32, 48], hidden_size=16, heads=2, dropout=0.0)
    >>> from training.models.stream import Stream
    >>> s = lambda w: Stream(torch.randn(2, 5, w), torch.ones(2, 5, dtype=torch.bool), torch.randn(2, w))
    >>> op([s(32), s(48)]).shape
    torch.Size([2, 16])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from training.tables import lookup, register

from .attention import MultiHeadAttention
from .concat_layernorm import FusedConcatLayerNorm
from .stream import Stream, masked_mean

#: Fusion operators by name; each is built as ``cls(widths, hidden_size, heads, dropout)``.
OPERATOR_CLASSES: dict[str, type[nn.Module]] = {}


def register_operator(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a fusion operator to :data:`OPERATOR_CLASSES` under ``name``."""
    return register(OPERATOR_CLASSES, name, "fusion operator")


@register_operator("concat")
class ConcatFusion(nn.Module):
    """Concatenation of the pooled vectors followed by LayerNorm (one fused op).

    It keeps the streams' full width, so it takes ``hidden_size``, ``heads`` and ``dropout`` only
    for the operators' common constructor and ignores them.
    """

    def __init__(self, widths: Sequence[int], hidden_size: int = 0, heads: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = FusedConcatLayerNorm(widths)
        self.out_features = sum(widths)

    def forward(self, streams: Sequence[Stream]) -> torch.Tensor:
        return self.norm([s.pooled for s in streams])


@register_operator("sum")
class SumFusion(nn.Module):
    """Sum of the pooled vectors, each first projected to ``hidden_size``, then LayerNorm
    (``heads`` and ``dropout`` are unused)."""

    def __init__(self, widths: Sequence[int], hidden_size: int, heads: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(w, hidden_size) for w in widths)
        self.norm = nn.LayerNorm(hidden_size)
        self.out_features = hidden_size

    def forward(self, streams: Sequence[Stream]) -> torch.Tensor:
        return self.norm(sum(proj(s.pooled) for proj, s in zip(self.proj, streams)))


@register_operator("gated")
class GatedFusion(nn.Module):
    """Gated multimodal unit: a learned per-modality, per-feature gate weighs the projected vectors.

    ``h_i = tanh(W_i x_i)``, ``z = softmax_i(W_z [x_1 .. x_n])``, output ``sum_i z_i * h_i``
    (for two modalities this is the GMU of Arevalo et al., 2017); ``heads`` and ``dropout`` are unused.
    """

    def __init__(self, widths: Sequence[int], hidden_size: int, heads: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(w, hidden_size) for w in widths)
        self.gate = nn.Linear(sum(widths), len(widths) * hidden_size)
        self.out_features = hidden_size

    def forward(self, streams: Sequence[Stream]) -> torch.Tensor:
        pooled = [s.pooled for s in streams]
        h = torch.stack([torch.tanh(proj(x)) for proj, x in zip(self.proj, pooled)], dim=1)
        z = self.gate(torch.cat(pooled, dim=-1)).view_as(h).softmax(dim=1)
        return (z * h).sum(dim=1)


@register_operator("cross_attention")
class CrossAttentionFusion(nn.Module):
    """Cross-modal attention: each stream's tokens attend to the tokens of all the other streams.

    For (text, image) that is text attending to image and image attending to text. Each attended
    stream (residual + LayerNorm) is mean-pooled over its valid tokens; the results are concatenated.
    """

    def __init__(self, widths: Sequence[int], hidden_size: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(w, hidden_size) for w in widths)
        self.attn = nn.ModuleList(MultiHeadAttention(hidden_size, heads, dropout) for _ in widths)
        self.norm = nn.ModuleList(nn.LayerNorm(hidden_size) for _ in widths)
        self.out_features = len(widths) * hidden_size

    def forward(self, streams: Sequence[Stream]) -> torch.Tensor:
        tokens = [proj(s.tokens) for proj, s in zip(self.proj, streams)]
        pooled = []
        for i, (attn, norm) in enumerate(zip(self.attn, self.norm)):
            others = [j for j in range(len(streams)) if j != i]
            keys = torch.cat([tokens[j] for j in others], dim=1)
            key_mask = torch.cat([streams[j].mask for j in others], dim=1)
            attended = norm(tokens[i] + attn(tokens[i], keys, key_mask))
            pooled.append(masked_mean(attended, streams[i].mask))
        return torch.cat(pooled, dim=-1)


def build_operator(name: str, widths: Sequence[int], hidden_size: int, heads: int, dropout: float) -> nn.Module:
    """The fusion operator ``name`` (a key of :data:`OPERATOR_CLASSES`) for streams of the given widths;
    it has an ``out_features`` attribute. An unknown name raises a ``ValueError`` listing the valid ones."""
    return lookup(OPERATOR_CLASSES, name, "fusion operator")(widths, hidden_size, heads, dropout)
