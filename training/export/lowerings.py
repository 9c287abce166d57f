"""ONNX lowerings of aten ops that replace ``torch.onnx``'s own, so that ONNX Runtime runs less.

GELU: ``torch.onnx`` (onnxscript's torchlib) writes ``gelu(x)`` as ``x * (0.5 * (1 + erf(x / sqrt2)))``.
ONNX Runtime's ``GeluFusion`` and ``FastGeluFusion`` (and ``BiasGelu`` after them) match the half on
the other side, ``(x * 0.5) * (1 + erf(x / sqrt2))``: with torchlib's order every GELU of a BERT-base
model stays five ops (Div, Erf, Add, Mul, Mul), which cost a paper-size late MobileNetV2 int8 graph
0.8 ms of 20 at batch 1 here. The arithmetic is the same: a product with 0.5 is exact in binary
floating point (away from subnormals), so both orders round to the same value, and TensorRT (which
fuses GELU in either order) gets the same graph in value.

Attention with a bool mask (BERT's, as transformers passes it to ``scaled_dot_product_attention``):
torchlib turns the mask into scores of the dtype's minimum, adds it, softmaxes, and then replaces NaN
weights by zeros in every layer (IsNaN + Where on each (heads x tokens x tokens) weight tensor, 1.2 ms
of a paper-size late MobileNetV2 int8 graph's 20 here). With a finite minimum no softmax row is NaN
(a row whose keys are all masked gets uniform weights), so the guard never fires on finite inputs:
here the bool mask becomes that additive mask and goes through torchlib's own float-mask lowering,
which is the same graph without the guard.

Attention's Kᵀ: torchlib swaps the key's last two axes by flattening it to 3-D, transposing and
reshaping back, with the shapes computed at run time (Shape, Slice, Concat per layer). ONNX Runtime
cannot fold that into its ``FusedMatMul`` (``transB``), so it materialises Kᵀ in every layer: with the
shape arithmetic, about 3 % of a paper-size late ViT int8 graph's 51 ms here (1.3 ms of Transposes;
measured A/B in one process). Here the key is transposed by one 4-D ``Transpose``, which ORT fuses and
TensorRT reads as the attention pattern it fuses; the values are torchlib's exactly (scaling by
sqrt(scale) commutes with a transpose).

Example:
    >>> torch.onnx.export(program, dynamo=True, custom_translation_table={**ATEN_LOWERINGS})  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx_ir as ir
import torch
from onnxscript import opset18 as op
from onnxscript.function_libs.torch_lib.ops.nn import aten_scaled_dot_product_attention

#: Constants of tanh-approximated GELU, as torch defines it.
_TANH_CUBIC = 0.044715
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu(self: Any, approximate: str = "none") -> Any:
    """``aten::gelu`` as ``(x * 0.5) * (1 + erf(x / sqrt2))`` (or ``tanh`` of torch's cubic for
    ``approximate="tanh"``): the order ONNX Runtime's Gelu / FastGelu fusions match."""
    x = self  # aten's name for the input, which the exporter binds by name

    def constant(value: float) -> Any:
        return ir.tensor(value, dtype=x.dtype)

    if approximate == "tanh":
        inner = op.Mul(constant(_SQRT_2_OVER_PI), op.Add(x, op.Mul(constant(_TANH_CUBIC), op.Pow(x, constant(3.0)))))
        curve = op.Tanh(inner)
    else:
        curve = op.Erf(op.Div(x, constant(math.sqrt(2.0))))
    return op.Mul(op.Mul(x, constant(0.5)), op.Add(curve, constant(1.0)))


def scaled_dot_product_attention(
    query: Any, key: Any, value: Any, attn_mask: Any = None, dropout_p: float = 0.0, is_causal: bool = False,
    scale: float | None = None, enable_gqa: bool = False,
) -> Any:
    """``aten::scaled_dot_product_attention`` as torchlib lowers it, with two changes (see the module
    docstring): a bool mask becomes the additive mask torchlib's bool-mask lowering builds (0 where
    attended, the dtype's minimum elsewhere), without the NaN guard that cannot fire; and Kᵀ is one
    4-D ``Transpose``. Causal, dropout and grouped-query attention go to torchlib's lowering."""
    if attn_mask is not None and attn_mask.dtype == ir.DataType.BOOL:
        attended = ir.tensor(0.0, dtype=query.dtype)
        masked = ir.tensor(query.dtype.min, dtype=query.dtype)
        attn_mask = op.Where(attn_mask, attended, masked)
    head_dim = query.shape[-1] if query.shape is not None else None
    plain = not (is_causal or dropout_p or enable_gqa) and isinstance(head_dim, int)
    if not plain or any(x.shape is None or len(x.shape) != 4 for x in (query, key, value)):
        return aten_scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    # torchlib's arithmetic in float32: scale = 1 / sqrt(E), both factors scaled by sqrt(scale).
    if scale is None:
        scale = np.float32(1.0) / np.sqrt(np.float32(head_dim))
    root_scale = ir.tensor(np.sqrt(np.float32(scale)), dtype=query.dtype)
    key_transposed = op.Transpose(key, perm=[0, 1, 3, 2])
    scores = op.MatMul(op.Mul(query, root_scale), op.Mul(key_transposed, root_scale))
    if attn_mask is not None:
        scores = op.Add(scores, attn_mask)
    return op.MatMul(op.Softmax(scores, axis=-1), value)


#: The lowerings above by the aten op they lower, for ``custom_translation_table``.
ATEN_LOWERINGS: dict[Any, Callable[..., Any]] = {
    torch.ops.aten.gelu.default: gelu,
    torch.ops.aten.scaled_dot_product_attention.default: scaled_dot_product_attention,
}
