// Python entry point of fused multi-head attention: validates what Python hands in, then calls the
// CPU or CUDA kernel on the inputs' device.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>

#include "kernels/attention.h"
#include "ops.h"
#include "tensor_view.h"

namespace py = pybind11;

namespace fusionrt::bindings {
namespace {

constexpr const char* kAxisNames[] = {"batch", "heads", "length", "head_dim"};

// Throws ValueError unless `view` has `expected` along `axis`, the size `reference` gave it.
void expect_axis(const ArrayView& view, size_t axis, int64_t expected, const char* reference) {
  if (view.dim(axis) != expected) {
    throw py::value_error(view.name + " has " + kAxisNames[axis] + " " + std::to_string(view.dim(axis)) +
                          ", expected " + std::to_string(expected) + " (" + reference + ")");
  }
}

TensorView view_bhsd(py::handle obj, const char* name, const char* layout, intptr_t stream) {
  TensorView view = view_tensor(obj, name, stream);
  view.expect_ndim(4, layout);
  view.expect_inner_contiguous();
  return view;
}

BhsStrides bhs_strides(const TensorView& view) { return {view.strides[0], view.strides[1], view.strides[2]}; }

py::object multihead_attention(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                               const py::object& key_padding_mask, std::optional<double> scale,
                               const py::object& out, intptr_t stream) {
  const TensorView q = view_bhsd(q_obj, "q", "(batch, heads, Lq, head_dim)", stream);
  const TensorView k = view_bhsd(k_obj, "k", "(batch, heads, Lk, head_dim)", stream);
  const TensorView v = view_bhsd(v_obj, "v", "(batch, heads, Lk, head_dim)", stream);
  for (const TensorView* view : {&k, &v}) {
    expect_same_dtype_and_device(*view, q);
    expect_axis(*view, 0, q.dim(0), "the batch of q");
    expect_axis(*view, 1, q.dim(1), "the heads of q");
    expect_axis(*view, 3, q.dim(3), "the head_dim of q");
  }
  expect_axis(v, 2, k.dim(2), "the length of k");
  if (q.dim(3) > AttentionParams::kMaxHeadDim) {
    throw py::value_error("q has head_dim " + std::to_string(q.dim(3)) + ", expected at most " +
                          std::to_string(AttentionParams::kMaxHeadDim));
  }

  AttentionParams params;
  params.q = q.data;
  params.k = k.data;
  params.v = v.data;
  params.q_strides = bhs_strides(q);
  params.k_strides = bhs_strides(k);
  params.v_strides = bhs_strides(v);
  params.batch = q.dim(0);
  params.heads = q.dim(1);
  params.lq = q.dim(2);
  params.lk = k.dim(2);
  params.head_dim = q.dim(3);
  params.dtype = q.dtype;
  params.scale = scale.value_or(1.0 / std::sqrt(static_cast<double>(params.head_dim)));
  if (!std::isfinite(params.scale)) throw py::value_error("scale must be finite, got " + std::to_string(params.scale));

  ArrayView mask;
  if (!key_padding_mask.is_none()) {
    mask = view_mask(key_padding_mask, "key_padding_mask", stream);
    expect_same_device(mask, q);
    mask.expect_ndim(2, "(batch, Lk)");
    expect_axis(mask, 0, params.batch, "the batch of q");
    if (mask.dim(1) != params.lk) {
      throw py::value_error("key_padding_mask has " + std::to_string(mask.dim(1)) + " keys, expected " +
                            std::to_string(params.lk) + " (the length of k)");
    }
    mask.expect_inner_contiguous();
    params.key_mask = static_cast<const uint8_t*>(mask.data);
    params.key_mask_batch_stride = mask.strides[0];
  }

  const std::vector<int64_t> shape{params.batch, params.heads, params.lq, params.head_dim};
  py::object result = out;
  if (out.is_none()) {
    if (q.device.kind != DeviceKind::kCPU) throw py::value_error("out= is required for inputs on " + q.device.str());
    result = new_numpy_array(q.dtype, shape);
  }
  const TensorView output = view_bhsd(result, "out", "(batch, heads, Lq, head_dim)", stream);
  expect_same_dtype_and_device(output, q);
  if (output.shape != shape) {
    throw py::value_error("out has shape (" + std::to_string(output.dim(0)) + ", " + std::to_string(output.dim(1)) +
                          ", " + std::to_string(output.dim(2)) + ", " + std::to_string(output.dim(3)) +
                          "), expected the shape of q");
  }
  if (!output.writeable) throw py::value_error("out is read-only");
  params.out = output.data;
  params.out_strides = bhs_strides(output);

  if (q.device.kind == DeviceKind::kCPU) {
    py::gil_scoped_release release;
    attention_cpu(params);
  } else {
#if FUSIONRT_WITH_CUDA
    attention_cuda(params, reinterpret_cast<cudaStream_t>(stream));
#else
    throw py::value_error("inputs are on " + q.device.str() + " but fusionrt was built without CUDA");
#endif
  }
  return result;
}

}  // namespace

void bind_attention(py::module_& m) {
  m.def("multihead_attention", &multihead_attention, py::arg("q"), py::arg("k"), py::arg("v"),
        py::arg("key_padding_mask") = py::none(), py::arg("scale") = py::none(), py::arg("out") = py::none(),
        py::arg("stream") = 0,
        R"doc(softmax(q kᵀ · scale, masked) v per batch item and head, accumulated in float32.

q: (batch, heads, Lq, head_dim); k, v: (batch, heads, Lk, head_dim); numpy arrays or DLPack tensors
    on one device, one dtype (float32, float16, bfloat16 via DLPack, float64); head_dim <= 128 and
    contiguous, other strides free (e.g. heads transposed out of (batch, L, heads, head_dim)).
key_padding_mask: optional (batch, Lk) bool, True = attend. Rows with no attended key give zeros.
scale: defaults to 1 / sqrt(head_dim).
out: optional preallocated (batch, heads, Lq, head_dim) array; required for CUDA tensors and bfloat16.
stream: cudaStream_t as an int for CUDA tensors (0: legacy default stream). The call is asynchronous
    on that stream; CPU calls return when done.
Returns out, or a new numpy array.)doc");
}

}  // namespace fusionrt::bindings
