"""FusedConcatLayerNorm: the module around fusionrt's fused concat + LayerNorm op."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import torch
from torch import nn


def _load_ops() -> ModuleType:
    """``fusionrt.ops``, which registers torch.ops.fusionrt.* and holds the op's contract."""
    try:
        import fusionrt.ops
    except ImportError as err:
        raise ImportError(
            "the concat operator needs fusionrt's compiled op torch.ops.fusionrt.fused_concat_layernorm: "
            "install fusionrt (pip install -e .) or pick another operator (sum, gated, cross_attention)"
        ) from err
    return fusionrt.ops


class FusedConcatLayerNorm(nn.Module):
    """LayerNorm over the concatenation of 2-4 ``(batch, width_i)`` inputs, as one fused op.

    Trains (autograd), exports (``torch.export`` / ONNX through ``fusionrt.onnx_ops``) and runs on
    TensorRT as a single node instead of cat + layer_norm.

    Example:
        >>> norm = FusedConcatLayerNorm([384, 1280])
        >>> norm([torch.randn(2, 384), torch.randn(2, 1280)]).shape
        torch.Size([2, 1664])
    """

    def __init__(self, widths: Sequence[int], eps: float = 1e-5) -> None:
        super().__init__()
        counts = _load_ops().CONCAT_LAYERNORM_INPUTS  # the op's contract
        if len(widths) not in counts:
            raise ValueError(f"FusedConcatLayerNorm joins {counts.start} to {counts.stop - 1} inputs, got {len(widths)}")
        self.widths = tuple(widths)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(sum(widths)))
        self.bias = nn.Parameter(torch.zeros(sum(widths)))

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """``inputs[i]`` ``(batch, widths[i])`` -> ``(batch, sum(widths))``."""
        return torch.ops.fusionrt.fused_concat_layernorm(list(inputs), self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"widths={self.widths}, eps={self.eps}"
