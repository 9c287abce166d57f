// Python entry point of fused multi-head attention: views what Python hands in, allocates a numpy
// output when none is given, and runs the op (ops/attention_op.h checks the arguments).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "ops.h"
#include "ops/attention_op.h"
#include "op_call.h"
#include "tensor_view.h"

namespace py = pybind11;

namespace fusionrt::bindings {
namespace {

py::object multihead_attention(const py::object& q, const py::object& k, const py::object& v,
                               const py::object& key_padding_mask, std::optional<double> scale,
                               const py::object& out, intptr_t stream) {
  const TensorView q_view = view_tensor(q, "q", stream);
  const TensorView k_view = view_tensor(k, "k", stream);
  const TensorView v_view = view_tensor(v, "v", stream);
  std::optional<ArrayView> mask;
  if (!key_padding_mask.is_none()) mask = view_mask(key_padding_mask, "key_padding_mask", stream);
  AttentionCall call(q_view, k_view, v_view, mask ? &*mask : nullptr, scale);

  return run_into(call, out, stream);
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
