"""Fused concat + LayerNorm against torch eager cat + layer_norm, at the study's pooled feature sizes.

Targets (CPU): the ``_C`` path on numpy with a preallocated output >= 2x faster than eager at batch 1
and 8; the torch-op path no slower than eager at batch 64. Groups read as one row per path:
``pytest bench/test_concat_layernorm_bench.py --benchmark-only --benchmark-group-by=group``.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusionrt
from fusionrt import _C

torch = pytest.importorskip("torch")
import fusionrt.ops as ops  # noqa: E402

F = torch.nn.functional

FEATURE_SIZES = {"768+1280": (768, 1280), "768+768": (768, 768), "384+1280": (384, 1280)}
BATCHES = [1, 8, 64]
PATHS = ["torch_eager", "torch_op", "C_numpy"]


def _case(batch: int, widths: tuple[int, ...], device: str):
    generator = torch.Generator().manual_seed(batch)
    inputs = [torch.randn(batch, w, generator=generator).to(device) for w in widths]
    weight = torch.randn(sum(widths), generator=generator).to(device)
    bias = torch.randn(sum(widths), generator=generator).to(device)
    return inputs, weight, bias


def _runner(path: str, inputs, weight, bias):
    width = weight.shape[0]
    if path == "torch_eager":
        return lambda: F.layer_norm(torch.cat(inputs, dim=1), (width,), weight, bias, 1e-5)
    if path == "torch_op":
        return lambda: ops.fused_concat_layernorm(inputs, weight, bias, 1e-5)
    arrays = [x.numpy() for x in inputs]
    w, b = weight.numpy(), bias.numpy()
    out = np.empty((inputs[0].shape[0], width), np.float32)
    return lambda: _C.fused_concat_layernorm(arrays, w, b, 1e-5, out)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("sizes", list(FEATURE_SIZES))
def test_cpu(benchmark, sizes, batch, path):
    benchmark.group = f"concat_layernorm cpu {sizes} batch {batch}"
    inputs, weight, bias = _case(batch, FEATURE_SIZES[sizes], "cpu")
    with torch.inference_mode():
        benchmark(_runner(path, inputs, weight, bias))


@pytest.mark.skipif(not (fusionrt.cuda_available() and torch.cuda.is_available()), reason="needs a CUDA GPU")
@pytest.mark.parametrize("path", PATHS[:2])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("sizes", list(FEATURE_SIZES))
def test_cuda(benchmark, sizes, batch, path):
    benchmark.group = f"concat_layernorm cuda {sizes} batch {batch}"
    inputs, weight, bias = _case(batch, FEATURE_SIZES[sizes], "cuda")
    run = _runner(path, inputs, weight, bias)

    def synchronized():
        run()
        torch.cuda.synchronize()

    with torch.inference_mode():
        benchmark(synchronized)
