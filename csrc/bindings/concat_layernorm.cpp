// Python entry point of fused concat + LayerNorm: views what Python hands in, allocates a numpy output
// when none is given, and runs the op (ops/concat_layernorm_op.h checks the arguments).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <vector>

#include "ops.h"
#include "ops/concat_layernorm_op.h"
#include "op_call.h"
#include "tensor_view.h"

namespace py = pybind11;

namespace fusionrt::bindings {
namespace {

py::object fused_concat_layernorm(const py::sequence& inputs, const py::object& weight, const py::object& bias,
                                  double eps, const py::object& out, intptr_t stream) {
  const size_t count = py::len(inputs);
  std::vector<TensorView> views;
  views.reserve(count);
  std::vector<const TensorArg*> input_args;
  for (size_t i = 0; i < count; ++i) {
    views.push_back(view_tensor(inputs[i], "inputs[" + std::to_string(i) + "]", stream));
    input_args.push_back(&views.back());
  }
  std::optional<TensorView> weight_view, bias_view;
  if (!weight.is_none()) weight_view = view_tensor(weight, "weight", stream);
  if (!bias.is_none()) bias_view = view_tensor(bias, "bias", stream);
  ConcatLayerNormCall call(input_args, weight_view ? &*weight_view : nullptr, bias_view ? &*bias_view : nullptr, eps);

  return run_into(call, out, stream);
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
