"""Fused multi-head attention against torch eager scaled_dot_product_attention, at the study's
fusion-attention shapes (hidden 256 / 4 heads of 64 unless named; text 64 tokens, image 49 or 197
patches, joined 64 + 49 / 64 + 197 for early fusion), with a key padding mask as the models pass it.

Targets: CPU not slower than eager SDPA at batch 1 and 8; CUDA >= 1.5x faster than eager at batch 1.
Groups read as one row per path:
``pytest bench/test_attention_bench.py --benchmark-only --benchmark-group-by=group``.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusionrt
from fusionrt import _C

torch = pytest.importorskip("torch")
import fusionrt.ops as ops  # noqa: E402

F = torch.nn.functional

# name: (heads, Lq, Lk, head_dim)
SHAPES = {
    "text64->image49": (4, 64, 49, 64),
    "image49->text64": (4, 49, 64, 64),
    "text64->image197": (4, 64, 197, 64),
    "joint64+49": (4, 113, 113, 64),
    "joint64+197": (4, 261, 261, 64),
    "joint64+49 h8 d32": (8, 113, 113, 32),
}
BATCHES = [1, 8]
PATHS = ["torch_sdpa", "torch_op", "C_numpy"]


def _case(batch: int, shape: tuple[int, int, int, int], device: str):
    heads, lq, lk, dim = shape
    generator = torch.Generator().manual_seed(batch * 1000 + lq)
    q = torch.randn(batch, heads, lq, dim, generator=generator).to(device)
    k = torch.randn(batch, heads, lk, dim, generator=generator).to(device)
    v = torch.randn(batch, heads, lk, dim, generator=generator).to(device)
    mask = torch.ones(batch, lk, dtype=torch.bool)
    mask[-1, lk // 2 :] = False  # one padded sample, as text padding gives
    return q, k, v, mask.to(device)


def _runner(path: str, q, k, v, mask):
    if path == "torch_sdpa":
        return lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
    if path == "torch_op":
        return lambda: ops.multihead_attention(q, k, v, mask)
    arrays = [x.numpy() for x in (q, k, v, mask)]
    out = np.empty(q.shape, np.float32)
    return lambda: _C.multihead_attention(*arrays, None, out)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_cpu(benchmark, shape, batch, path):
    benchmark.group = f"attention cpu {shape} batch {batch}"
    with torch.inference_mode():
        benchmark(_runner(path, *_case(batch, SHAPES[shape], "cpu")))


@pytest.mark.skipif(not (fusionrt.cuda_available() and torch.cuda.is_available()), reason="needs a CUDA GPU")
@pytest.mark.parametrize("path", PATHS[:2])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_cuda(benchmark, shape, batch, path):
    benchmark.group = f"attention cuda {shape} batch {batch}"
    run = _runner(path, *_case(batch, SHAPES[shape], "cuda"))

    def synchronized():
        run()
        torch.cuda.synchronize()

    with torch.inference_mode():
        benchmark(synchronized)
