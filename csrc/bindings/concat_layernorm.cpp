// Python entry point of fused concat + LayerNorm: validates what Python hands in, then calls the
// CPU or CUDA kernel on the inputs' device.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "kernels/concat_layernorm.h"
#include "ops.h"
#include "tensor_view.h"

namespace py = pybind11;

namespace fusionrt::bindings {
namespace {

void expect_vector(const TensorView& view, int64_t length, const char* what) {
  view.expect_ndim(1, "(features,)");
  if (view.dim(0) != length) {
    throw py::value_error(view.name + " has " + std::to_string(view.dim(0)) + " elements, expected " +
                          std::to_string(length) + " (" + what + ")");
  }
  view.expect_inner_contiguous();
}

py::object fused_concat_layernorm(const py::sequence& inputs, const py::object& weight, const py::object& bias,
                                  double eps, const py::object& out, intptr_t stream) {
  const auto count = static_cast<int>(py::len(inputs));
  if (count < ConcatLayerNormParams::kMinInputs || count > ConcatLayerNormParams::kMaxInputs) {
    throw py::value_error("expected 2 to 4 inputs, got " + std::to_string(count));
  }
  if (!(eps > 0.0)) throw py::value_error("eps must be > 0, got " + std::to_string(eps));

  ConcatLayerNormParams params;
  params.num_inputs = count;
  params.eps = eps;
  std::vector<TensorView> views;
  views.reserve(count);
  for (int i = 0; i < count; ++i) {
    views.push_back(view_tensor(inputs[i], "inputs[" + std::to_string(i) + "]", stream));
    const TensorView& view = views.back();
    view.expect_ndim(2, "(batch, features)");
    view.expect_inner_contiguous();
    if (i > 0) {
      expect_same_dtype_and_device(view, views[0]);
      if (view.dim(0) != views[0].dim(0)) {
        throw py::value_error(view.name + " has batch " + std::to_string(view.dim(0)) + ", expected " +
                              std::to_string(views[0].dim(0)) + " (the batch of inputs[0])");
      }
    }
    params.inputs[i] = view.data;
    params.widths[i] = view.dim(1);
    params.row_strides[i] = view.dim(0) > 1 ? view.strides[0] : view.dim(1);
  }
  const TensorView& first = views[0];
  params.rows = first.dim(0);
  params.dtype = first.dtype;
  const int64_t width = params.total_width();

  std::vector<TensorView> affine;
  for (const auto& [object, name, field] : {std::tuple{&weight, "weight", &params.weight},
                                            std::tuple{&bias, "bias", &params.bias}}) {
    if (object->is_none()) continue;
    affine.push_back(view_tensor(*object, name, stream));
    expect_same_dtype_and_device(affine.back(), first);
    expect_vector(affine.back(), width, "the total width of the inputs");
    *field = affine.back().data;
  }

  py::object result = out;
  if (out.is_none()) {
    if (first.device.kind != DeviceKind::kCPU) {
      throw py::value_error("out= is required for inputs on " + first.device.str());
    }
    result = new_numpy_array(first.dtype, {params.rows, width});
  }
  const TensorView output = view_tensor(result, "out", stream);
  expect_same_dtype_and_device(output, first);
  output.expect_ndim(2, "(batch, total features)");
  output.expect_inner_contiguous();
  if (output.dim(0) != params.rows || output.dim(1) != width) {
    throw py::value_error("out has shape (" + std::to_string(output.dim(0)) + ", " + std::to_string(output.dim(1)) +
                          "), expected (" + std::to_string(params.rows) + ", " + std::to_string(width) + ")");
  }
  if (!output.writeable) throw py::value_error("out is read-only");
  params.output = output.data;
  params.output_row_stride = output.dim(0) > 1 ? output.strides[0] : width;

  if (first.device.kind == DeviceKind::kCPU) {
    py::gil_scoped_release release;
    concat_layernorm_cpu(params);
  } else {
#if FUSIONRT_WITH_CUDA
    concat_layernorm_cuda(params, reinterpret_cast<cudaStream_t>(stream));
#else
    throw py::value_error("inputs are on " + first.device.str() + " but fusionrt was built without CUDA");
#endif
  }
  return result;
}

}  // namespace

void bind_concat_layernorm(py::module_& m) {
  m.def("fused_concat_layernorm", &fused_concat_layernorm, py::arg("inputs"), py::arg("weight") = py::none(),
        py::arg("bias") = py::none(), py::arg("eps") = 1e-5, py::arg("out") = py::none(), py::arg("stream") = 0,
        R"doc(LayerNorm over the concatenation of 2-4 arrays shaped (batch, d_i), without building it.

inputs: numpy arrays or DLPack tensors (torch, cupy, ...) on one device, one dtype (float32, float16,
    bfloat16 via DLPack, float64); features contiguous. weight, bias: optional (sum d_i,) arrays.
out: optional preallocated (batch, sum d_i) array; required for CUDA tensors and bfloat16.
stream: cudaStream_t as an int for CUDA tensors (0: legacy default stream). The call is asynchronous
    on that stream; CPU calls return when done.
Returns out, or a new numpy array.)doc");
}

}  // namespace fusionrt::bindings
