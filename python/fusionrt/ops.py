"""fusionrt's fused ops as PyTorch custom ops: they train (autograd), compile and export as one node.

Each op's math is the compiled kernel on CPU and CUDA tensors alike. This module defines the schemas,
the fake (meta) implementations and autograd; the kernels are registered in C++ by
``libfusionrt_torch.so`` when fusionrt was built against the running torch (``build_info()["torch"]``),
else by Python functions that call ``fusionrt._C``: same kernels and checks, ~10 us more per call.
``FUSIONRT_TORCH_KERNELS=python`` in the environment picks the Python ones regardless.

Each op's rules (input counts, dtypes, limits, the output shape) are its contract in
``csrc/ops/<op>_contract.h``, read here through ``fusionrt._C.op_contracts()``: the kernels check
concrete tensors in C++; the fake implementations apply the same contract to symbolic sizes.
Where an op's parts live (kernel, contract, bindings, plugin, ONNX lowering, tests): ``csrc/README.md``.

Example:
    >>> import torch, fusionrt.ops
    >>> text, image = torch.randn(8, 384), torch.randn(8, 1280)
    >>> fusionrt.ops.fused_concat_layernorm([text, image]).shape
    torch.Size([8, 1664])
    >>> q, kv = torch.randn(8, 4, 64, 64), torch.randn(8, 4, 49, 64)
    >>> fusionrt.ops.multihead_attention(q, kv, kv).shape
    torch.Size([8, 4, 64, 64])
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from . import _C
from ._optional import require

torch = require("torch")

__all__ = ["CONCAT_LAYERNORM_INPUTS", "KERNELS", "MAX_HEAD_DIM", "fused_concat_layernorm", "multihead_attention"]

_CONTRACTS = _C.op_contracts()
_CONCAT_LAYERNORM = _CONTRACTS["concat_layernorm"]
_ATTENTION = _CONTRACTS["multihead_attention"]

#: How many inputs :func:`fused_concat_layernorm` joins.
CONCAT_LAYERNORM_INPUTS = range(_CONCAT_LAYERNORM["min_inputs"], _CONCAT_LAYERNORM["max_inputs"] + 1)
#: The largest head_dim :func:`multihead_attention` takes.
MAX_HEAD_DIM: int = _ATTENTION["max_head_dim"]

# The ops are defined on a plain ``torch.library.Library`` rather than with ``torch.library.custom_op``,
# whose wrappers cost ~10 us a call: as much as the whole kernel at batch 1.
_LIBRARY = torch.library.Library("fusionrt", "DEF")
_LIBRARY.define("fused_concat_layernorm(Tensor[] inputs, Tensor? weight, Tensor? bias, float eps) -> Tensor")
_LIBRARY.define(
    "multihead_attention(Tensor q, Tensor k, Tensor v, Tensor? key_padding_mask, float? scale) -> Tensor"
)

_COMPILED_KERNELS = Path(_C.__file__).with_name("libfusionrt_torch.so")


def _load_compiled_kernels() -> bool:
    """Loads the C++ kernels when they exist and match the running torch; says whether it did."""
    built_for = _C.build_info()["torch"]
    if os.environ.get("FUSIONRT_TORCH_KERNELS", "compiled") == "python" or built_for is None:
        return False
    # The library is tied to the C++ ABI of the torch it was compiled with.
    if built_for != torch.__version__:
        return _python_kernels_instead(f"were built for torch {built_for}, but {torch.__version__} runs")
    try:
        torch.ops.load_library(str(_COMPILED_KERNELS))
    except OSError as error:  # a missing file, or a symbol this build of torch lacks
        return _python_kernels_instead(f"failed to load ({error})")
    return True


def _python_kernels_instead(why: str) -> bool:
    warnings.warn(
        f"fusionrt's C++ torch kernels {why}; using its Python kernels (~10 us slower a call). "
        "Reinstall fusionrt to rebuild them.",
        stacklevel=4,
    )
    return False


#: Which kernels the ops run: ``"compiled"`` (registered in C++) or ``"python"``.
KERNELS = "compiled" if _load_compiled_kernels() else "python"


def _register(name: str, kernel, fake, backward, setup_context) -> None:
    """Registers an op's Python kernel for the device keys the C++ library did not, its fake (meta)
    implementation and autograd."""
    qualified = f"fusionrt::{name}"
    for device_key in ("CPU", "CUDA"):
        if not torch._C._dispatch_has_kernel_for_dispatch_key(qualified, device_key):
            _LIBRARY.impl(name, kernel, device_key)
    torch.library.register_fake(qualified, fake, lib=_LIBRARY)
    torch.library.register_autograd(qualified, backward, setup_context=setup_context, lib=_LIBRARY)


def _torch_dtypes(contract: dict) -> tuple[torch.dtype, ...]:
    return tuple(getattr(torch, name) for name in contract["dtypes"])


def _check_dtype(name: str, x: torch.Tensor, allowed: tuple[torch.dtype, ...]) -> None:
    if x.dtype not in allowed:
        raise TypeError(f"{name} is {x.dtype}, expected one of {', '.join(map(str, allowed))}")


def _output_shape(contract: dict, data_inputs: Sequence[torch.Tensor]) -> list:
    """The contract's output shape rule over the data inputs' sizes, which may be SymInts (fake tensors
    under tracing), so it is applied here rather than in C++: output dim j is the sum of ``input_dim``
    over the data inputs ``[first, first + count)``, or through the last one when count is None."""
    shape = []
    for input_dim, first, count in contract["output_shape"]:
        last = len(data_inputs) if count is None else first + count
        size = data_inputs[first].shape[input_dim]
        for x in data_inputs[first + 1 : last]:
            size = size + x.shape[input_dim]
        shape.append(size)
    return shape


_CONCAT_LAYERNORM_DTYPES = _torch_dtypes(_CONCAT_LAYERNORM)


def _check_concat_layernorm(
    inputs: Sequence[torch.Tensor], weight: Optional[torch.Tensor], bias: Optional[torch.Tensor]
) -> list:
    """Validates the op's arguments under fake tensors, where the kernels' checks do not run, by the op's
    contract; returns the output shape."""
    if len(inputs) not in CONCAT_LAYERNORM_INPUTS:
        counts = CONCAT_LAYERNORM_INPUTS
        raise ValueError(f"expected {counts.start} to {counts.stop - 1} inputs, got {len(inputs)}")
    first = inputs[0]
    for i, x in enumerate(inputs):
        if x.dim() != 2:
            raise ValueError(f"inputs[{i}] has {x.dim()} dims {tuple(x.shape)}, expected 2 (batch, features)")
        _check_dtype(f"inputs[{i}]", x, _CONCAT_LAYERNORM_DTYPES)
        if x.dtype != first.dtype:
            raise TypeError(f"inputs[{i}] is {x.dtype}, expected {first.dtype} (the dtype of inputs[0])")
        if x.device != first.device:
            raise ValueError(f"inputs[{i}] is on {x.device}, expected {first.device} (the device of inputs[0])")
        if x.shape[0] != first.shape[0]:
            raise ValueError(f"inputs[{i}] has batch {x.shape[0]}, expected {first.shape[0]} (the batch of inputs[0])")
    shape = _output_shape(_CONCAT_LAYERNORM, inputs)
    width = shape[1]
    for name, param in (("weight", weight), ("bias", bias)):
        if param is None:
            continue
        if param.shape != (width,):
            raise ValueError(f"{name} has shape {tuple(param.shape)}, expected ({width},) (the total width)")
        if param.dtype != first.dtype or param.device != first.device:
            raise TypeError(f"{name} is {param.dtype} on {param.device}, expected {first.dtype} on {first.device}")
    return shape


def _as_kernel_arg(x: torch.Tensor):
    """A zero-copy handle the kernel binding accepts: numpy for CPU float types (the fastest path into
    pybind11), else the tensor itself through DLPack. Called per tensor per call, so kept lean: the
    cheap tests come first, and ``detach`` (a new tensor object) only where grad forbids ``numpy()``."""
    if not x.is_contiguous() and x.stride(-1) != 1:
        x = x.contiguous()
    if x.is_cuda or x.dtype is torch.bfloat16:
        return x.detach()
    return x.detach().numpy() if x.requires_grad else x.numpy()


def _concat_layernorm_kernel(
    inputs: list[torch.Tensor], weight: Optional[torch.Tensor], bias: Optional[torch.Tensor], eps: float
) -> torch.Tensor:
    # The binding checks everything it is handed (count, shapes, dtypes, devices) by the op's contract.
    if not inputs:  # nothing to size the output by: let the binding report the count
        _C.fused_concat_layernorm(inputs)
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


def _concat_layernorm_fake(inputs, weight, bias, eps):
    return inputs[0].new_empty(_check_concat_layernorm(inputs, weight, bias))


def _concat_layernorm_setup_context(ctx, inputs, output) -> None:
    tensors, weight, bias, eps = inputs
    ctx.widths = [x.shape[1] for x in tensors]
    ctx.eps = eps
    ctx.has_weight, ctx.has_bias = weight is not None, bias is not None
    ctx.save_for_backward(*tensors, weight)


def _concat_layernorm_backward(ctx, grad_output):
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


_register(
    "fused_concat_layernorm",
    _concat_layernorm_kernel,
    _concat_layernorm_fake,
    _concat_layernorm_backward,
    _concat_layernorm_setup_context,
)


def fused_concat_layernorm(
    inputs: Sequence[torch.Tensor],
    weight: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """LayerNorm over ``torch.cat(inputs, dim=1)``, computed without building the concatenation.

    Args:
        inputs: 2 to 4 tensors (``CONCAT_LAYERNORM_INPUTS``) shaped (batch, d_i), one dtype (float32,
            float16, bfloat16, float64) and one device (CPU or CUDA).
        weight, bias: optional affine parameters shaped (sum d_i,).
        eps: added to the variance, as in ``torch.nn.functional.layer_norm``.

    Returns:
        (batch, sum d_i) tensor equal to
        ``layer_norm(cat(inputs, 1), (sum d_i,), weight, bias, eps)``, accumulated in float32.

    Example:
        >>> y = fused_concat_layernorm([torch.randn(2, 768), torch.randn(2, 1280)])
    """
    return torch.ops.fusionrt.fused_concat_layernorm.default(list(inputs), weight, bias, float(eps))


_ATTENTION_DTYPES = _torch_dtypes(_ATTENTION)


def _check_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor]) -> None:
    """Validates the attention op's arguments under fake tensors, where the kernels' checks do not run,
    by the op's contract."""
    for name, x, length in (("q", q, "Lq"), ("k", k, "Lk"), ("v", v, "Lk")):
        if x.dim() != 4:
            raise ValueError(f"{name} has {x.dim()} dims {tuple(x.shape)}, expected 4 (batch, heads, {length}, head_dim)")
        _check_dtype(name, x, _ATTENTION_DTYPES)
    for name, x in (("k", k), ("v", v)):
        if x.dtype != q.dtype:
            raise TypeError(f"{name} is {x.dtype}, expected {q.dtype} (the dtype of q)")
        if x.device != q.device:
            raise ValueError(f"{name} is on {x.device}, expected {q.device} (the device of q)")
        for axis, what in ((0, "batch"), (1, "heads"), (3, "head_dim")):
            if x.shape[axis] != q.shape[axis]:
                raise ValueError(f"{name} has {what} {x.shape[axis]}, expected {q.shape[axis]} (the {what} of q)")
    if v.shape[2] != k.shape[2]:
        raise ValueError(f"v has length {v.shape[2]}, expected {k.shape[2]} (the length of k)")
    if q.shape[3] > MAX_HEAD_DIM:
        raise ValueError(f"q has head_dim {q.shape[3]}, expected at most {MAX_HEAD_DIM}")
    if mask is None:
        return
    if mask.dtype != torch.bool:
        raise TypeError(f"key_padding_mask is {mask.dtype}, expected torch.bool (True = attend)")
    if tuple(mask.shape) != (q.shape[0], k.shape[2]):
        raise ValueError(
            f"key_padding_mask has shape {tuple(mask.shape)}, expected ({q.shape[0]}, {k.shape[2]}) (batch, Lk)"
        )
    if mask.device != q.device:
        raise ValueError(f"key_padding_mask is on {mask.device}, expected {q.device} (the device of q)")


def _attention_scale(q: torch.Tensor, scale: Optional[float]) -> float:
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale


def _attention_kernel(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: Optional[torch.Tensor], scale: Optional[float]
) -> torch.Tensor:
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    stream = torch.cuda.current_stream(q.device).cuda_stream if q.is_cuda else 0
    _C.multihead_attention(
        _as_kernel_arg(q),
        _as_kernel_arg(k),
        _as_kernel_arg(v),
        None if key_padding_mask is None else _as_kernel_arg(key_padding_mask),
        _attention_scale(q, scale),
        _as_kernel_arg(out),
        stream,
    )
    return out


def _attention_fake(q, k, v, key_padding_mask, scale):
    _check_attention(q, k, v, key_padding_mask)
    if scale is not None and not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    return q.new_empty(_output_shape(_ATTENTION, (q, k, v)))


def _attention_probabilities(q, k, mask, scale):
    """softmax(q kᵀ · scale, masked) in float32 (float64 for float64), zeros for rows with no key."""
    accumulate = torch.float64 if q.dtype == torch.float64 else torch.float32
    scores = torch.matmul(q.to(accumulate), k.to(accumulate).transpose(-2, -1)) * scale
    if mask is None:
        return scores.softmax(dim=-1)
    probabilities = scores.masked_fill(~mask[:, None, None, :], float("-inf")).softmax(dim=-1)
    # softmax over no key is NaN; the op defines those rows' output, hence their gradients, as zero.
    return torch.where(mask.any(dim=-1)[:, None, None, None], probabilities, 0.0)


def _attention_setup_context(ctx, inputs, output) -> None:
    q, k, v, key_padding_mask, scale = inputs
    ctx.scale = _attention_scale(q, scale)
    ctx.save_for_backward(q, k, v, key_padding_mask)


def _attention_backward(ctx, grad_output):
    q, k, v, mask = ctx.saved_tensors
    p = _attention_probabilities(q, k, mask, ctx.scale)
    accumulate = p.dtype
    grad = grad_output.to(accumulate)
    grad_v = torch.matmul(p.transpose(-2, -1), grad)
    grad_p = torch.matmul(grad, v.to(accumulate).transpose(-2, -1))
    # Softmax backward: dS = P * (dP - rowsum(P * dP)).
    grad_scores = p * (grad_p - (p * grad_p).sum(dim=-1, keepdim=True))
    grad_q = torch.matmul(grad_scores, k.to(accumulate)) * ctx.scale
    grad_k = torch.matmul(grad_scores.transpose(-2, -1), q.to(accumulate)) * ctx.scale
    return grad_q.to(q.dtype), grad_k.to(k.dtype), grad_v.to(v.dtype), None, None


_register("multihead_attention", _attention_kernel, _attention_fake, _attention_backward, _attention_setup_context)


def multihead_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: Optional[torch.Tensor] = None,
    scale: Optional[float] = None,
) -> torch.Tensor:
    """Multi-head attention ``softmax(q kᵀ · scale + mask) v`` as one fused op.

    Args:
        q: (batch, heads, Lq, head_dim); k, v: (batch, heads, Lk, head_dim). One dtype (float32,
            float16, bfloat16, float64; accumulated in float32, float64 for float64) and one device.
            head_dim <= 128 (``MAX_HEAD_DIM``); any strides with a contiguous last dim (heads may be a transposed view).
        key_padding_mask: optional (batch, Lk) bool, True where a key may be attended to, as
            ``attn_mask`` of ``scaled_dot_product_attention``. A row with no attended key (a whole
            modality absent) gives zeros, and zero gradients; SDPA leaves it to its backend (NaN from some).
        scale: multiplies q kᵀ; ``1 / sqrt(head_dim)`` when None.

    Returns:
        (batch, heads, Lq, head_dim) tensor, contiguous, of q's dtype: for rows with at least one key,
        ``scaled_dot_product_attention(q, k, v, attn_mask=key_padding_mask[:, None, None, :], scale=scale)``.

    Example:
        >>> text, image = torch.randn(2, 4, 64, 64), torch.randn(2, 4, 49, 64)
        >>> present = torch.ones(2, 49, dtype=torch.bool)
        >>> multihead_attention(text, image, image, present).shape
        torch.Size([2, 4, 64, 64])
    """
    # The kernels check the scale (finite), as the fake implementation does under tracing.
    scale = None if scale is None else float(scale)
    return torch.ops.fusionrt.multihead_attention.default(q, k, v, key_padding_mask, scale)
