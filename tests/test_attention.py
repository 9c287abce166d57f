"""Fused multi-head attention: the kernels (through fusionrt._C and the torch op) against a float64
reference and torch's scaled_dot_product_attention, with the op's one deliberate difference: a query
row with no attended key gives zeros (and zero gradients); what SDPA gives there depends on its backend
(NaN from the math backend)."""

from __future__ import annotations

import numpy as np
import pytest

import fusionrt
from fusionrt import _C

torch = pytest.importorskip("torch")
import fusionrt.ops as ops  # noqa: E402  (needs torch)

F = torch.nn.functional

# (batch, heads, Lq, Lk, head_dim): degenerate sizes, odd head dims, Lq != Lk, key tiles with a
# remainder, and the study's streams (text 64, image 49 / 197 patches, joined 64 + 49).
SHAPES = [
    (1, 1, 1, 1, 1),
    (2, 3, 5, 7, 16),
    (3, 1, 17, 1, 33),
    (1, 4, 64, 49, 64),
    (2, 4, 64, 197, 64),
    (2, 2, 113, 113, 32),
    (2, 2, 9, 130, 128),
    (1, 3, 70, 65, 127),
]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
# Absolute tolerance per unit of output magnitude: rounding of the output dominates.
ATOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}


def reference(q, k, v, mask=None, scale=None):
    """Attention in float64 from first principles; rows with no attended key are zeros."""
    q, k, v = q.double(), k.double(), v.double()
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return weights @ v


def assert_close_to_reference(out, q, k, v, mask=None, scale=None):
    expected = reference(q.cpu(), k.cpu(), v.cpu(), None if mask is None else mask.cpu(), scale)
    atol = ATOL[out.dtype] * max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(out.double().cpu(), expected, atol=atol, rtol=0)


def make_qkv(generator, shape, dtype, device="cpu"):
    batch, heads, lq, lk, dim = shape
    q = torch.randn(batch, heads, lq, dim, generator=generator).mul(2)
    k = torch.randn(batch, heads, lk, dim, generator=generator).mul(2)
    v = torch.randn(batch, heads, lk, dim, generator=generator)
    return [t.to(device, dtype) for t in (q, k, v)]


def make_mask(generator, batch, lk, kind):
    """None, random padding (every row keeps a key), or padding with whole rows masked out."""
    if kind == "none":
        return None
    mask = torch.rand(batch, lk, generator=generator) > 0.4
    mask[:, 0] = True
    if kind == "fully_masked":
        mask[0] = False
    return mask


@pytest.fixture
def generator(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mask_kind", ["none", "padding", "fully_masked"])
def test_torch_op_matches_reference(generator, shape, dtype, mask_kind):
    q, k, v = make_qkv(generator, shape, dtype)
    mask = make_mask(generator, shape[0], shape[3], mask_kind)
    out = ops.multihead_attention(q, k, v, mask)
    assert out.shape == q.shape and out.dtype == dtype and out.is_contiguous()
    assert_close_to_reference(out, q, k, v, mask)


@pytest.mark.parametrize("shape", SHAPES[1:6])
def test_matches_sdpa_and_zeros_rows_without_keys(generator, shape):
    q, k, v = make_qkv(generator, shape, torch.float32)
    mask = make_mask(generator, shape[0], shape[3], "fully_masked")
    out = ops.multihead_attention(q, k, v, mask, scale=0.3)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :], scale=0.3)
    assert torch.equal(out[0], torch.zeros_like(out[0]))
    torch.testing.assert_close(out[1:], expected[1:], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_random_shapes(generator, rng, batch):
    for _ in range(6):
        shape = (batch, int(rng.integers(1, 6)), int(rng.integers(1, 90)), int(rng.integers(1, 260)),
                 int(rng.integers(1, 129)))
        q, k, v = make_qkv(generator, shape, torch.float32)
        mask = make_mask(generator, batch, shape[3], "padding")
        assert_close_to_reference(ops.multihead_attention(q, k, v, mask), q, k, v, mask)


def test_modality_absent_in_the_joined_sequence(generator):
    # Early fusion: queries and keys are text (8 tokens, padded) then image (6 patches). Sample 1 has
    # no image, sample 2 no text: their rows attend only to the modality present. Sample 3 has nothing.
    text_valid = torch.tensor([[1] * 8, [1] * 5 + [0] * 3, [0] * 8, [0] * 8], dtype=torch.bool)
    image_present = torch.tensor([True, False, True, False])
    mask = torch.cat([text_valid, image_present[:, None].expand(4, 6)], dim=1)
    q, k, v = make_qkv(generator, (4, 2, 14, 14, 16), torch.float32)
    out = ops.multihead_attention(q, k, v, mask)
    assert torch.isfinite(out).all()
    assert torch.equal(out[3], torch.zeros_like(out[3]))
    assert_close_to_reference(out, q, k, v, mask)
    alone = ops.multihead_attention(q[1:2], k[1:2, :, :5], v[1:2, :, :5])
    torch.testing.assert_close(out[1:2], alone, atol=1e-6, rtol=1e-6)


def test_transposed_heads_are_read_in_place(generator):
    # (batch, L, heads, head_dim) projections viewed as (batch, heads, L, head_dim), as models do.
    q, k, v = (torch.randn(2, length, 4, 16, generator=generator).transpose(1, 2) for length in (9, 11, 11))
    assert not q.is_contiguous()
    mask = make_mask(generator, 2, 11, "padding")
    assert_close_to_reference(ops.multihead_attention(q, k, v, mask), q, k, v, mask)
    out = np.full((2, 4, 9, 16), np.nan, np.float32)
    assert _C.multihead_attention(q.numpy(), k.numpy(), v.numpy(), mask.numpy(), out=out) is out
    assert_close_to_reference(torch.from_numpy(out), q, k, v, mask)


def test_a_key_slice_of_a_longer_mask_is_read_in_place(generator):
    q, k, v = make_qkv(generator, (3, 2, 4, 5, 8), torch.float32)
    wide = torch.rand(3, 12, generator=generator) > 0.3
    mask = wide[:, 2:7]  # batch stride 12
    wide[:, 2] = True
    assert_close_to_reference(ops.multihead_attention(q, k, v, mask), q, k, v, mask)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_numpy_entry_point(generator, dtype):
    q, k, v = make_qkv(generator, (2, 3, 6, 10, 24), dtype)
    mask = make_mask(generator, 2, 10, "fully_masked")
    out = _C.multihead_attention(q.numpy(), k.numpy(), v.numpy(), mask.numpy(), 0.25)
    assert isinstance(out, np.ndarray) and out.dtype == q.numpy().dtype and out.shape == (2, 3, 6, 24)
    assert_close_to_reference(torch.from_numpy(out), q, k, v, mask, 0.25)


def test_bfloat16_and_bool_tensors_go_through_dlpack(generator):
    q, k, v = make_qkv(generator, (2, 2, 5, 7, 16), torch.bfloat16)
    mask = make_mask(generator, 2, 7, "padding")
    out = torch.empty_like(q)
    assert _C.multihead_attention(q, k, v, mask, out=out) is out
    assert_close_to_reference(out, q, k, v, mask)


def test_many_heads_run_on_threads_and_match(generator):
    q, k, v = make_qkv(generator, (8, 12, 64, 197, 64), torch.float32)
    mask = make_mask(generator, 8, 197, "fully_masked")
    assert_close_to_reference(ops.multihead_attention(q, k, v, mask), q, k, v, mask)


def test_empty_sizes():
    assert ops.multihead_attention(*(torch.empty(0, 2, 3, 4),) * 3).shape == (0, 2, 3, 4)
    q = torch.randn(1, 2, 3, 4)
    out = ops.multihead_attention(q, torch.empty(1, 2, 0, 4), torch.empty(1, 2, 0, 4))
    assert torch.equal(out, torch.zeros_like(q))  # no key at all: every row is "fully masked"


@pytest.mark.parametrize("mask_kind", ["none", "fully_masked"])
def test_gradcheck_float64(generator, mask_kind):
    q, k, v = (t.requires_grad_() for t in make_qkv(generator, (2, 2, 3, 5, 4), torch.float64))
    mask = make_mask(generator, 2, 5, mask_kind)
    assert torch.autograd.gradcheck(lambda q, k, v: ops.multihead_attention(q, k, v, mask, 0.7), (q, k, v))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gradients_match_sdpa_and_vanish_for_rows_without_keys(generator, dtype):
    q, k, v = make_qkv(generator, (3, 2, 6, 9, 16), dtype)
    mask = make_mask(generator, 3, 9, "fully_masked")
    ours = [t.clone().requires_grad_() for t in (q, k, v)]
    theirs = [t[1:].clone().requires_grad_() for t in (q, k, v)]
    grad = torch.randn(q.shape, generator=generator).to(dtype)
    ops.multihead_attention(*ours, mask).backward(grad)
    F.scaled_dot_product_attention(*theirs, attn_mask=mask[1:, None, None, :]).backward(grad[1:])
    tolerance = 1e-4 if dtype == torch.float32 else 5e-2
    for a, b in zip(ours, theirs):
        assert torch.equal(a.grad[0], torch.zeros_like(a.grad[0]))
        torch.testing.assert_close(a.grad[1:].float(), b.grad.float(), atol=tolerance * float(b.grad.abs().max()),
                                   rtol=0)


def test_opcheck(generator):
    q, k, v = make_qkv(generator, (2, 2, 3, 5, 8), torch.float32)
    mask = make_mask(generator, 2, 5, "padding")
    torch.library.opcheck(torch.ops.fusionrt.multihead_attention.default, (q, k, v, mask, None))


def test_torch_export_sees_one_node():
    class CrossAttention(torch.nn.Module):
        def forward(self, text, image, image_mask):
            return ops.multihead_attention(text, image, image, image_mask)

    batch = torch.export.Dim("batch")
    args = (torch.randn(2, 4, 6, 8), torch.randn(2, 4, 5, 8), torch.ones(2, 5, dtype=torch.bool))
    program = torch.export.export(CrossAttention(), args,
                                  dynamic_shapes={"text": {0: batch}, "image": {0: batch}, "image_mask": {0: batch}})
    targets = [n.target for n in program.graph.nodes if n.op == "call_function"]
    assert targets == [torch.ops.fusionrt.multihead_attention.default]
    q, k, mask = torch.randn(3, 4, 6, 8), torch.randn(3, 4, 5, 8), torch.rand(3, 5) > 0.2
    mask[:, 0] = True
    torch.testing.assert_close(program.module()(q, k, mask),
                               F.scaled_dot_product_attention(q, k, k, attn_mask=mask[:, None, None, :]))


@pytest.mark.parametrize("seed", range(6))
def test_fake_output_shape_is_the_kernels(seed):
    """The fake implementation applies the op's contract (_C.op_contracts()) as the kernel does."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    rng = np.random.default_rng(seed)
    batch, heads, lq, lk = (int(n) for n in rng.integers(1, 9, size=4))
    head_dim = int(rng.integers(1, ops.MAX_HEAD_DIM + 1))
    q = torch.randn(batch, heads, lq, head_dim)
    k, v = torch.randn(2, batch, heads, lk, head_dim)
    mask = torch.ones(batch, lk, dtype=torch.bool)
    with FakeTensorMode() as mode:
        fake = ops.multihead_attention(*(mode.from_tensor(t) for t in (q, k, v, mask)))
    assert fake.shape == ops.multihead_attention(q, k, v, mask).shape


def test_max_head_dim_is_the_contracts():
    assert ops.MAX_HEAD_DIM == _C.op_contracts()["multihead_attention"]["max_head_dim"] == 128


class TestBadInputs:
    """Errors at the boundary say what was expected and what came, from the op and from _C alike."""

    def qkv(self, q=(2, 3, 4, 8), k=(2, 3, 5, 8), v=None, dtype=np.float32):
        return [np.zeros(shape, dtype) for shape in (q, k, k if v is None else v)]

    @pytest.mark.parametrize(
        "shapes, message",
        [
            (dict(q=(2, 4, 8)), r"q has 3 dims \(2, 4, 8\), expected 4 \(batch, heads, Lq, head_dim\)"),
            (dict(k=(2, 3, 5, 8, 1)), r"k has 5 dims .*, expected 4 \(batch, heads, Lk, head_dim\)"),
            (dict(k=(3, 3, 5, 8)), r"k has batch 3, expected 2 \(the batch of q\)"),
            (dict(k=(2, 1, 5, 8)), r"k has heads 1, expected 3 \(the heads of q\)"),
            (dict(k=(2, 3, 5, 16)), r"k has head_dim 16, expected 8 \(the head_dim of q\)"),
            (dict(v=(2, 3, 6, 8)), r"v has length 6, expected 5 \(the length of k\)"),
            (dict(q=(2, 3, 4, 129), k=(2, 3, 5, 129)), r"q has head_dim 129, expected at most 128"),
        ],
    )
    def test_shapes(self, shapes, message):
        arrays = self.qkv(**shapes)
        with pytest.raises(ValueError, match=message):
            _C.multihead_attention(*arrays)
        with pytest.raises(ValueError, match=message):
            ops.multihead_attention(*(torch.from_numpy(a) for a in arrays))

    @pytest.mark.parametrize(
        "mask, error, message",
        [
            (np.ones((2, 4), bool), ValueError, r"key_padding_mask has 4 keys, expected 5 \(the length of k\)"),
            (np.ones((3, 5), bool), ValueError, r"key_padding_mask has batch 3, expected 2 \(the batch of q\)"),
            (np.ones((2, 1, 5), bool), ValueError, r"key_padding_mask has 3 dims .*, expected 2 \(batch, Lk\)"),
            (np.ones((2, 5), np.uint8), TypeError, r"key_padding_mask has dtype uint8, expected bool"),
        ],
    )
    def test_masks(self, mask, error, message):
        with pytest.raises(error, match=message):
            _C.multihead_attention(*self.qkv(), mask)

    def test_op_reports_the_kernel_mask_checks(self):
        q, k, v = (torch.from_numpy(a) for a in self.qkv())
        with pytest.raises(TypeError, match=r"key_padding_mask has dtype float32, expected bool"):
            ops.multihead_attention(q, k, v, torch.ones(2, 5))
        with pytest.raises(ValueError, match=r"key_padding_mask has 4 keys, expected 5 \(the length of k\)"):
            ops.multihead_attention(q, k, v, torch.ones(2, 4, dtype=torch.bool))

    def test_dlpack_mask_dtype(self):
        with pytest.raises(TypeError, match=r"key_padding_mask has DLPack dtype \(code 1, bits 8, lanes 1\)"):
            _C.multihead_attention(*self.qkv(), torch.ones(2, 5, dtype=torch.uint8))

    def test_dtype_mismatch(self):
        q, k, v = self.qkv()
        with pytest.raises(TypeError, match=r"v is float16, expected float32 \(the dtype of q\)"):
            _C.multihead_attention(q, k, v.astype(np.float16))
        with pytest.raises(TypeError, match=r"v is float16, expected float32 \(the dtype of q\)"):
            ops.multihead_attention(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v).half())

    def test_non_finite_scale(self):
        with pytest.raises(ValueError, match="scale must be finite, got nan"):
            _C.multihead_attention(*self.qkv(), scale=float("nan"))
        with pytest.raises(ValueError, match="scale must be finite, got inf"):
            ops.multihead_attention(*(torch.from_numpy(a) for a in self.qkv()), scale=float("inf"))

    def test_fake_tensors_are_checked_too(self):
        from torch._subclasses.fake_tensor import FakeTensorMode

        with FakeTensorMode():
            q, k = torch.empty(2, 3, 4, 8), torch.empty(2, 3, 5, 8)
            with pytest.raises(ValueError, match="scale must be finite, got -inf"):
                ops.multihead_attention(q, k, k, scale=float("-inf"))
            with pytest.raises(ValueError, match=r"v has length 6, expected 5 \(the length of k\)"):
                ops.multihead_attention(q, k, torch.empty(2, 3, 6, 8))

    def test_out(self):
        with pytest.raises(ValueError, match=r"out has shape \(2, 3, 4, 4\), expected the shape of q"):
            _C.multihead_attention(*self.qkv(), out=np.zeros((2, 3, 4, 4), np.float32))
        read_only = np.zeros((2, 3, 4, 8), np.float32)
        read_only.flags.writeable = False
        with pytest.raises(ValueError, match="out is read-only"):
            _C.multihead_attention(*self.qkv(), out=read_only)

    def test_non_contiguous_features_are_rejected_by_the_kernel(self):
        q, k, v = self.qkv()
        with pytest.raises(ValueError, match=r"q has stride 4 along its last dim, expected 1"):
            _C.multihead_attention(np.zeros((2, 3, 8, 4), np.float32).transpose(0, 1, 3, 2), k, v)


cuda = pytest.mark.skipif(not fusionrt.cuda_available() or not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mask_kind", ["none", "fully_masked"])
def test_cuda_matches_reference(generator, shape, dtype, mask_kind):
    q, k, v = make_qkv(generator, shape, dtype, "cuda")
    mask = make_mask(generator, shape[0], shape[3], mask_kind)
    mask = None if mask is None else mask.cuda()
    out = ops.multihead_attention(q, k, v, mask)
    assert out.is_cuda and out.dtype == dtype
    assert_close_to_reference(out, q, k, v, mask)
    cpu = ops.multihead_attention(q.cpu(), k.cpu(), v.cpu(), None if mask is None else mask.cpu())
    torch.testing.assert_close(out.cpu().double(), cpu.double(), atol=2 * ATOL[dtype] * 4, rtol=0)


@cuda
def test_cuda_transposed_heads_on_a_side_stream(generator):
    q, k, v = (torch.randn(2, length, 4, 64, generator=generator).cuda().transpose(1, 2) for length in (64, 49, 49))
    mask = make_mask(generator, 2, 49, "fully_masked").cuda()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        out = ops.multihead_attention(q, k, v, mask)
    stream.synchronize()
    assert_close_to_reference(out, q, k, v, mask)


@cuda
def test_cuda_gradients(generator):
    q, k, v = (t.requires_grad_() for t in make_qkv(generator, (2, 2, 3, 5, 4), torch.float64, "cuda"))
    mask = make_mask(generator, 2, 5, "fully_masked").cuda()
    assert torch.autograd.gradcheck(lambda q, k, v: ops.multihead_attention(q, k, v, mask), (q, k, v))
