"""Fused concat + LayerNorm: the kernels (through fusionrt._C and the torch op) against
torch.cat + torch.nn.functional.layer_norm, in float64 as the independent reference."""

from __future__ import annotations

import numpy as np
import pytest

import fusionrt
from fusionrt import _C

torch = pytest.importorskip("torch")
import fusionrt.ops as ops  # noqa: E402  (needs torch)

F = torch.nn.functional

WIDTH_SETS = [(1, 1), (3, 5), (7, 33, 65), (1, 2, 3, 4), (768, 1280), (768, 768), (384, 1280), (100, 1000, 10, 1)]
BATCHES = [1, 2, 37]
# Absolute tolerance on outputs of unit scale, per storage dtype: rounding of the output dominates.
ATOL = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}
NUMPY_DTYPES = {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16}


def reference(inputs, weight=None, bias=None, eps=1e-5):
    x = torch.cat([t.double() for t in inputs], dim=1)
    w = None if weight is None else weight.double()
    b = None if bias is None else bias.double()
    return F.layer_norm(x, (x.shape[1],), w, b, eps)


def make_case(generator, batch, widths, dtype, affine, device="cpu"):
    inputs = [torch.randn(batch, w, generator=generator).mul(3).add(1.5).to(device, dtype) for w in widths]
    if not affine:
        return inputs, None, None
    width = sum(widths)
    weight = torch.randn(width, generator=generator).to(device, dtype)
    bias = torch.randn(width, generator=generator).to(device, dtype)
    return inputs, weight, bias


def assert_matches_reference(out, inputs, weight, bias, eps=1e-5):
    expected = reference(inputs, weight, bias, eps)
    scale = 1.0 if weight is None else float(weight.abs().max()) + float(bias.abs().max())
    torch.testing.assert_close(out.double().cpu(), expected.cpu(), atol=ATOL[out.dtype] * max(scale, 1.0) * 4, rtol=0)


@pytest.fixture
def generator(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("widths", WIDTH_SETS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("affine", [False, True])
def test_torch_op_matches_cat_layer_norm(generator, batch, widths, dtype, affine):
    inputs, weight, bias = make_case(generator, batch, widths, dtype, affine)
    out = ops.fused_concat_layernorm(inputs, weight, bias)
    assert out.shape == (batch, sum(widths)) and out.dtype == dtype
    assert_matches_reference(out, inputs, weight, bias)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
@pytest.mark.parametrize("widths", [(3, 5), (7, 33, 65), (384, 1280)])
def test_numpy_entry_point_matches_reference(generator, widths, dtype):
    inputs, weight, bias = make_case(generator, 5, widths, dtype, affine=True)
    out = _C.fused_concat_layernorm([t.numpy() for t in inputs], weight.numpy(), bias.numpy(), 1e-3)
    assert isinstance(out, np.ndarray) and out.dtype == NUMPY_DTYPES[dtype]
    assert_matches_reference(torch.from_numpy(out), inputs, weight, bias, eps=1e-3)


def test_numpy_entry_point_writes_into_out_without_allocating(generator):
    inputs, weight, bias = make_case(generator, 4, (16, 48), torch.float32, affine=True)
    out = np.full((4, 64), np.nan, np.float32)
    returned = _C.fused_concat_layernorm([t.numpy() for t in inputs], weight.numpy(), bias.numpy(), out=out)
    assert returned is out
    assert_matches_reference(torch.from_numpy(out), inputs, weight, bias)


def test_bfloat16_torch_tensors_go_through_dlpack(generator):
    inputs, weight, bias = make_case(generator, 3, (10, 20), torch.bfloat16, affine=True)
    out = torch.empty(3, 30, dtype=torch.bfloat16)
    assert _C.fused_concat_layernorm(inputs, weight, bias, 1e-5, out) is out
    assert_matches_reference(out, inputs, weight, bias)


def test_rows_with_padding_between_them_are_read_in_place(generator):
    wide = torch.randn(6, 50, generator=generator)
    inputs = [wide[:, :20], wide[:, 30:45]]  # row stride 50, features contiguous
    out = ops.fused_concat_layernorm(inputs)
    assert_matches_reference(out, inputs, None, None)
    numpy_out = _C.fused_concat_layernorm([x.numpy() for x in inputs])
    assert_matches_reference(torch.from_numpy(numpy_out), inputs, None, None)


def test_broadcast_rows_are_read_without_copies(generator):
    placeholder = torch.randn(1, 12, generator=generator).expand(5, 12)  # row stride 0
    image = torch.randn(5, 20, generator=generator)
    assert placeholder.stride(0) == 0
    out = ops.fused_concat_layernorm([placeholder, image])
    assert_matches_reference(out, [placeholder.contiguous(), image], None, None)
    numpy_out = _C.fused_concat_layernorm([placeholder.numpy(), image.numpy()])
    assert_matches_reference(torch.from_numpy(numpy_out), [placeholder, image], None, None)


def test_non_contiguous_features_are_rejected_by_the_kernel_and_copied_by_the_op(generator):
    x = torch.randn(20, 4, generator=generator).t()  # features strided
    y = torch.randn(4, 8, generator=generator)
    with pytest.raises(ValueError, match=r"inputs\[0\] has stride 4 along its last dim, expected 1"):
        _C.fused_concat_layernorm([x.numpy(), y.numpy()])
    assert_matches_reference(ops.fused_concat_layernorm([x, y]), [x, y], None, None)


def test_large_batch_runs_on_threads_and_matches(generator):
    inputs, weight, bias = make_case(generator, 2048, (768, 1280), torch.float32, affine=True)
    assert_matches_reference(ops.fused_concat_layernorm(inputs, weight, bias), inputs, weight, bias)


def test_constant_rows_give_the_bias_not_nan(generator):
    inputs = [torch.full((2, 5), 3.0), torch.full((2, 7), 3.0)]
    bias = torch.randn(12, generator=generator)
    out = ops.fused_concat_layernorm(inputs, torch.ones(12), bias)
    torch.testing.assert_close(out, bias.expand(2, 12), atol=1e-6, rtol=0)


def test_empty_batch_gives_an_empty_result():
    out = ops.fused_concat_layernorm([torch.empty(0, 3), torch.empty(0, 4)])
    assert out.shape == (0, 7)


@pytest.mark.parametrize("num_inputs", [2, 3, 4])
@pytest.mark.parametrize("affine", [False, True])
def test_gradcheck_float64(generator, num_inputs, affine):
    widths = [3, 4, 2, 5][:num_inputs]
    inputs, weight, bias = make_case(generator, 3, widths, torch.float64, affine)
    leaves = [t.requires_grad_() for t in inputs + ([weight, bias] if affine else [])]

    def fn(*args):
        return ops.fused_concat_layernorm(args[:num_inputs], *(args[num_inputs:] or (None, None)))

    assert torch.autograd.gradcheck(fn, leaves)
    assert torch.autograd.gradgradcheck(fn, leaves)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gradients_match_torch_autograd(generator, dtype):
    inputs, weight, bias = make_case(generator, 4, (24, 40), dtype, affine=True)
    ours = [t.clone().requires_grad_() for t in inputs + [weight, bias]]
    theirs = [t.clone().requires_grad_() for t in inputs + [weight, bias]]
    grad = torch.randn(4, 64, generator=generator).to(dtype)
    ops.fused_concat_layernorm(ours[:2], ours[2], ours[3]).backward(grad)
    F.layer_norm(torch.cat(theirs[:2], 1), (64,), theirs[2], theirs[3]).backward(grad)
    tolerance = 1e-4 if dtype == torch.float32 else 5e-2
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.grad.float(), b.grad.float(), atol=tolerance * float(b.grad.abs().max()), rtol=0)


@pytest.mark.parametrize("affine", [False, True])
def test_opcheck(generator, affine):
    """Schema, fake implementation, autograd registration and device kernels agree (torch's own check)."""
    inputs, weight, bias = make_case(generator, 3, (5, 7), torch.float64, affine)
    for t in [*inputs, weight, bias]:
        if t is not None:
            t.requires_grad_(True)
    torch.library.opcheck(torch.ops.fusionrt.fused_concat_layernorm.default, (inputs, weight, bias, 1e-5))


def test_torch_export_sees_one_node():
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(7))
            self.bias = torch.nn.Parameter(torch.zeros(7))

        def forward(self, text, image):
            return ops.fused_concat_layernorm([text, image], self.weight, self.bias)

    batch = torch.export.Dim("batch")
    program = torch.export.export(Head(), (torch.randn(2, 3), torch.randn(2, 4)),
                                  dynamic_shapes={"text": {0: batch}, "image": {0: batch}})
    targets = [n.target for n in program.graph.nodes if n.op == "call_function"]
    assert targets == [torch.ops.fusionrt.fused_concat_layernorm.default]
    x, y = torch.randn(5, 3), torch.randn(5, 4)
    torch.testing.assert_close(program.module()(x, y), F.layer_norm(torch.cat([x, y], 1), (7,)))


@pytest.mark.parametrize("seed", range(6))
def test_fake_output_shape_is_the_kernels(seed):
    """The fake implementation applies the op's contract (_C.op_contracts()) as the kernel does."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    rng = np.random.default_rng(seed)
    batch, count = int(rng.integers(1, 9)), int(rng.choice(ops.CONCAT_LAYERNORM_INPUTS))
    widths = [int(w) for w in rng.integers(1, 50, size=count)]
    inputs = [torch.randn(batch, w) for w in widths]
    weight = torch.randn(sum(widths))
    with FakeTensorMode() as mode:
        fake = ops.fused_concat_layernorm([mode.from_tensor(x) for x in inputs], mode.from_tensor(weight))
    assert fake.shape == ops.fused_concat_layernorm(inputs, weight).shape


def test_fake_output_shape_sums_symbolic_widths():
    """Exported with dynamic widths, the output width is the contract's sum of the inputs' widths."""

    class Join(torch.nn.Module):
        def forward(self, text, image):
            return ops.fused_concat_layernorm([text, image])

    dims = [torch.export.Dim(name, min=2, max=4096) for name in ("batch", "text_width", "image_width")]
    program = torch.export.export(Join(), (torch.randn(2, 3), torch.randn(2, 5)),
                                  dynamic_shapes={"text": {0: dims[0], 1: dims[1]}, "image": {0: dims[0], 1: dims[2]}})
    (output,) = [n for n in program.graph.nodes if n.op == "output"][0].args[0]
    batch, width = output.meta["val"].shape
    text, image = (n.meta["val"] for n in program.graph.nodes if n.op == "placeholder")
    assert str(batch) == str(text.shape[0]) and str(width) == str(text.shape[1] + image.shape[1])
    x, y = torch.randn(3, 7), torch.randn(3, 11)
    assert program.module()(x, y).shape == ops.fused_concat_layernorm([x, y]).shape == (3, 18)


def test_input_count_is_the_contracts():
    contract = _C.op_contracts()["concat_layernorm"]
    assert ops.CONCAT_LAYERNORM_INPUTS == range(contract["min_inputs"], contract["max_inputs"] + 1) == range(2, 5)
    for count in (contract["min_inputs"] - 1, contract["max_inputs"] + 1):
        with pytest.raises(ValueError, match=f"expected 2 to 4 inputs, got {count}"):
            ops.fused_concat_layernorm([torch.zeros(2, 3)] * count)


class TestBadInputs:
    """Errors at the boundary say what was expected and what came."""

    def arrays(self, *shapes, dtype=np.float32):
        return [np.zeros(shape, dtype) for shape in shapes]

    @pytest.mark.parametrize("count", [0, 1, 5])
    def test_input_count(self, count):
        with pytest.raises(ValueError, match=f"expected 2 to 4 inputs, got {count}"):
            _C.fused_concat_layernorm(self.arrays(*[(2, 3)] * count))

    def test_dims(self):
        with pytest.raises(ValueError, match=r"inputs\[1\] has 3 dims \(2, 3, 4\), expected 2 \(batch, features\)"):
            _C.fused_concat_layernorm(self.arrays((2, 3), (2, 3, 4)))

    def test_batch_mismatch(self):
        with pytest.raises(ValueError, match=r"inputs\[1\] has batch 3, expected 2 \(the batch of inputs\[0\]\)"):
            _C.fused_concat_layernorm(self.arrays((2, 3), (3, 3)))

    def test_dtype_mismatch(self):
        with pytest.raises(TypeError, match=r"inputs\[1\] is float16, expected float32 \(the dtype of inputs\[0\]\)"):
            _C.fused_concat_layernorm([np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float16)])

    def test_integer_arrays(self):
        with pytest.raises(TypeError, match=r"inputs\[0\] has dtype int64, expected float32, float16 or float64"):
            _C.fused_concat_layernorm([np.zeros((2, 3), np.int64), np.zeros((2, 3), np.int64)])

    def test_big_endian_arrays(self):
        with pytest.raises(TypeError, match="native byte order"):
            _C.fused_concat_layernorm([np.zeros((2, 3), ">f4"), np.zeros((2, 3), ">f4")])

    def test_not_an_array(self):
        with pytest.raises(TypeError, match=r"inputs\[1\] is a list, expected a numpy array or a DLPack tensor"):
            _C.fused_concat_layernorm([np.zeros((2, 3), np.float32), [[0.0] * 3] * 2])

    def test_weight_length(self):
        with pytest.raises(ValueError, match=r"weight has 5 elements, expected 6 \(the total width of the inputs\)"):
            _C.fused_concat_layernorm(self.arrays((2, 3), (2, 3)), weight=np.ones(5, np.float32))

    def test_bias_dtype(self):
        with pytest.raises(TypeError, match=r"bias is float64, expected float32"):
            _C.fused_concat_layernorm(self.arrays((2, 3), (2, 3)), bias=np.ones(6))

    def test_out_shape(self):
        with pytest.raises(ValueError, match=r"out has shape \(2, 5\), expected \(2, 6\)"):
            _C.fused_concat_layernorm(self.arrays((2, 3), (2, 3)), out=np.empty((2, 5), np.float32))

    def test_out_read_only(self):
        out = np.empty((2, 6), np.float32)
        out.flags.writeable = False
        with pytest.raises(ValueError, match="out is read-only"):
            _C.fused_concat_layernorm(self.arrays((2, 3), (2, 3)), out=out)

    @pytest.mark.parametrize("eps", [0.0, -1.0, float("nan"), float("inf"), -float("inf")])
    def test_eps(self, eps):
        with pytest.raises(ValueError, match="eps must be > 0"):
            _C.fused_concat_layernorm(self.arrays((2, 3), (2, 3)), eps=eps)

    def test_bfloat16_needs_out(self):
        x = torch.zeros(2, 3, dtype=torch.bfloat16)
        with pytest.raises(TypeError, match="numpy has no bfloat16 arrays; pass out="):
            _C.fused_concat_layernorm([x, x])

    def test_torch_op_reports_the_kernel_checks(self):
        with pytest.raises(TypeError, match=r"inputs\[1\] is float64, expected float32"):
            ops.fused_concat_layernorm([torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64)])
        with pytest.raises(TypeError, match=r"inputs\[0\] has dtype int64"):
            ops.fused_concat_layernorm([torch.zeros(2, 3, dtype=torch.long)] * 2)
        with pytest.raises(ValueError, match=r"weight has 4 elements, expected 6"):
            ops.fused_concat_layernorm([torch.zeros(2, 3)] * 2, torch.ones(4))

    def test_fake_tensors_are_checked_in_torch_terms(self):
        from torch._subclasses.fake_tensor import FakeTensorMode

        with FakeTensorMode():
            x, y = torch.empty(2, 3), torch.empty(2, 3, dtype=torch.float64)
            with pytest.raises(TypeError, match=r"inputs\[1\] is torch.float64, expected torch.float32"):
                ops.fused_concat_layernorm([x, y])
            with pytest.raises(ValueError, match=r"inputs\[1\] has batch 3, expected 2"):
                ops.fused_concat_layernorm([x, torch.empty(3, 3)])
            with pytest.raises(ValueError, match=r"weight has shape \(4,\), expected \(6,\)"):
                ops.fused_concat_layernorm([x, x], torch.empty(4))


cuda = pytest.mark.skipif(
    not (fusionrt.cuda_available() and torch.cuda.is_available()),
    reason="needs a CUDA GPU with CUDA builds of fusionrt and torch",
)


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("widths", WIDTH_SETS)
@pytest.mark.parametrize("batch", [1, 37, 1024])
def test_cuda_kernel_matches_reference(generator, batch, widths, dtype):
    inputs, weight, bias = make_case(generator, batch, widths, dtype, affine=True, device="cuda")
    out = ops.fused_concat_layernorm(inputs, weight, bias)
    assert out.is_cuda
    assert_matches_reference(out, inputs, weight, bias)


@cuda
def test_cuda_and_cpu_kernels_agree(generator):
    inputs, weight, bias = make_case(generator, 64, (768, 1280), torch.float32, affine=True)
    cpu = ops.fused_concat_layernorm(inputs, weight, bias)
    gpu = ops.fused_concat_layernorm([t.cuda() for t in inputs], weight.cuda(), bias.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)


@cuda
def test_cuda_inputs_need_out_and_one_device():
    x = torch.zeros(2, 3, device="cuda")
    with pytest.raises(ValueError, match="out= is required for inputs on cuda:0"):
        _C.fused_concat_layernorm([x, x])
    with pytest.raises(ValueError, match=r"inputs\[1\] is on cpu, expected cuda:0"):
        _C.fused_concat_layernorm([x, torch.zeros(2, 3)], out=torch.empty(2, 6, device="cuda"))
