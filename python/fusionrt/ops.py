"""fusionrt's fused ops as PyTorch custom ops: they train (autograd), compile and export as one node.

Each op's math is the compiled kernel (``fusionrt._C``) on CPU and CUDA tensors alike; this module
only validates, allocates the output and wires autograd and the fake (meta) implementation.

Example:
    >>> import torch, fusionrt.ops
    >>> text, image = torch.randn(8, 384), torch.randn(8, 1280)
    >>> fusionrt.ops.fused_concat_layernorm([text, image]).shape
    torch.Size([8, 1664])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from . import _C
from ._optional import require

torch = require("torch")

__all__ = ["fused_concat_layernorm"]

_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _check_concat_layernorm(
    inputs: Sequence[torch.Tensor], weight: Optional[torch.Tensor], bias: Optional[torch.Tensor]
) -> int:
    """Validates the op's arguments (also under fake tensors); returns the total width."""
    if not 2 <= len(inputs) <= 4:
        raise ValueError(f"expected 2 to 4 inputs, got {len(inputs)}")
    first = inputs[0]
    for i, x in enumerate(inputs):
        if x.dim() != 2:
            raise ValueError(f"inputs[{i}] has {x.dim()} dims {tuple(x.shape)}, expected 2 (batch, features)")
        if x.dtype not in _KERNEL_DTYPES:
            raise TypeError(f"inputs[{i}] is {x.dtype}, expected one of {', '.join(map(str, _KERNEL_DTYPES))}")
        if x.dtype != first.dtype:
            raise TypeError(f"inputs[{i}] is {x.dtype}, expected {first.dtype} (the dtype of inputs[0])")
        if x.device != first.device:
            raise ValueError(f"inputs[{i}] is on {x.device}, expected {first.device} (the device of inputs[0])")
        if x.shape[0] != first.shape[0]:
            raise ValueError(f"inputs[{i}] has batch {x.shape[0]}, expected {first.shape[0]} (the batch of inputs[0])")
    width = sum(x.shape[1] for x in inputs)
    for name, param in (("weight", weight), ("bias", bias)):
        if param is None:
            continue
        if param.shape != (width,):
            raise ValueError(f"{name} has shape {tuple(param.shape)}, expected ({width},) (the total width)")
        if param.dtype != first.dtype or param.device != first.device:
            raise TypeError(f"{name} is {param.dtype} on {param.device}, expected {first.dtype} on {first.device}")
    return width


def _as_kernel_arg(x: torch.Tensor):
    """A zero-copy handle the kernel binding accepts: numpy for CPU float types (the fastest path into
    pybind11), else the tensor itself through DLPack. Called per tensor per call, so kept lean."""
    if x.stride(-1) != 1:
        x = x.contiguous()
    if x.is_cuda or x.dtype is torch.bfloat16:
        return x.detach()
    return x.detach().numpy()


@torch.library.custom_op("fusionrt::fused_concat_layernorm", mutates_args=())
def _fused_concat_layernorm(
    inputs: list[torch.Tensor], weight: Optional[torch.Tensor], bias: Optional[torch.Tensor], eps: float
) -> torch.Tensor:
    # The binding validates everything it is handed (shapes, dtypes, devices); checking here too would
    # double the fixed cost that dominates at small batch.
    if not 2 <= len(inputs) <= 4:
        raise ValueError(f"expected 2 to 4 inputs, got {len(inputs)}")
    first = inputs[0]
    width = sum(x.shape[-1] for x in inputs)
    out = torch.empty((first.shape[0], width), dtype=first.dtype, device=first.device)
    stream = torch.cuda.current_stream(first.device).cuda_stream if first.is_cuda else 0
    _C.fused_concat_layernorm(
        [_as_kernel_arg(x) for x in inputs],
        None if weight is None else _as_kernel_arg(weight),
        None if bias is None else _as_kernel_arg(bias),
        eps,
        _as_kernel_arg(out),
        stream,
    )
    return out


@_fused_concat_layernorm.register_fake
def _(inputs, weight, bias, eps):
    width = _check_concat_layernorm(inputs, weight, bias)
    return inputs[0].new_empty((inputs[0].shape[0], width))


def _setup_context(ctx, inputs, output) -> None:
    tensors, weight, bias, eps = inputs
    ctx.widths = [x.shape[1] for x in tensors]
    ctx.eps = eps
    ctx.has_weight, ctx.has_bias = weight is not None, bias is not None
    ctx.save_for_backward(*tensors, weight)


def _backward(ctx, grad_output):
    *tensors, weight = ctx.saved_tensors
    dtype = tensors[0].dtype
    accumulate = torch.float64 if dtype == torch.float64 else torch.float32
    x = torch.cat([t.to(accumulate) for t in tensors], dim=1)
    variance, mean = torch.var_mean(x, dim=1, correction=0, keepdim=True)
    inv_std = torch.rsqrt(variance + ctx.eps)
    x_hat = (x - mean) * inv_std
    grad = grad_output.to(accumulate)
    grad_x_hat = grad * weight.to(accumulate) if weight is not None else grad
    grad_x = inv_std * (
        grad_x_hat - grad_x_hat.mean(dim=1, keepdim=True) - x_hat * (grad_x_hat * x_hat).mean(dim=1, keepdim=True)
    )
    grad_inputs = [g.to(dtype) for g in grad_x.split(ctx.widths, dim=1)]
    grad_weight = (grad * x_hat).sum(dim=0).to(dtype) if ctx.has_weight else None
    grad_bias = grad.sum(dim=0).to(dtype) if ctx.has_bias else None
    return grad_inputs, grad_weight, grad_bias, None


_fused_concat_layernorm.register_autograd(_backward, setup_context=_setup_context)


def fused_concat_layernorm(
    inputs: Sequence[torch.Tensor],
    weight: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """LayerNorm over ``torch.cat(inputs, dim=1)``, computed without building the concatenation.

    Args:
        inputs: 2 to 4 tensors shaped (batch, d_i), one dtype (float32, float16, bfloat16, float64)
            and one device (CPU or CUDA).
        weight, bias: optional affine parameters shaped (sum d_i,).
        eps: added to the variance, as in ``torch.nn.functional.layer_norm``.

    Returns:
        (batch, sum d_i) tensor equal to
        ``layer_norm(cat(inputs, 1), (sum d_i,), weight, bias, eps)``, accumulated in float32.

    Example:
        >>> y = fused_concat_layernorm([torch.randn(2, 768), torch.randn(2, 1280)])
    """
    return torch.ops.fusionrt.fused_concat_layernorm(list(inputs), weight, bias, float(eps))
