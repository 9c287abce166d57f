"""ONNX lowerings of aten ops that replace ``torch.onnx``'s own, so that ONNX Runtime fuses what it can.

GELU: ``torch.onnx`` (onnxscript's torchlib) writes ``gelu(x)`` as ``x * (0.5 * (1 + erf(x / sqrt2)))``.
ONNX Runtime's ``GeluFusion`` and ``FastGeluFusion`` (and ``BiasGelu`` after them) match the half on
the other side, ``(x * 0.5) * (1 + erf(x / sqrt2))``: with torchlib's order every GELU of a BERT-base
model stays five ops (Div, Erf, Add, Mul, Mul), which cost a paper-size late MobileNetV2 int8 graph
0.8 ms of 20 at batch 1 here. The arithmetic is the same: a product with 0.5 is exact in binary
floating point (away from subnormals), so both orders round to the same value, and TensorRT (which
fuses GELU in either order) gets the same graph in value.

Example:
    >>> torch.onnx.export(program, dynamo=True, custom_translation_table={**ATEN_LOWERINGS})  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import onnx_ir as ir
import torch
from onnxscript import opset18 as op

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


#: The lowerings above by the aten op they lower, for ``custom_translation_table``.
ATEN_LOWERINGS: dict[Any, Callable[..., Any]] = {torch.ops.aten.gelu.default: gelu}
