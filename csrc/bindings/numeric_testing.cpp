// fusionrt._C.testing: the shared host/device conversions, exposed so tests can check them against
// numpy and torch bit for bit (the CUDA kernels run the same functions).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "kernels/numeric.h"
#include "ops.h"

namespace py = pybind11;

namespace fusionrt::bindings {
namespace {

using Bits = py::array_t<uint16_t, py::array::c_style | py::array::forcecast>;
using Floats = py::array_t<float, py::array::c_style | py::array::forcecast>;

template <typename Half, Half (*convert)(float)>
Bits from_float(const Floats& values) {
  Bits out(values.request().shape);
  const float* in = values.data();
  uint16_t* bits = out.mutable_data();
  for (py::ssize_t i = 0; i < values.size(); ++i) bits[i] = convert(in[i]).bits;
  return out;
}

template <typename Half, float (*convert)(Half)>
Floats to_float(const Bits& values) {
  Floats out(values.request().shape);
  const uint16_t* in = values.data();
  float* floats = out.mutable_data();
  for (py::ssize_t i = 0; i < values.size(); ++i) floats[i] = convert(Half{in[i]});
  return out;
}

}  // namespace

void bind_numeric_testing(py::module_& m) {
  py::module_ testing = m.def_submodule("testing", "Internals exposed for tests; not a stable API.");
  testing.def("float_to_half_bits", &from_float<half_t, float_to_half>, "float32 -> IEEE half bits (RNE)");
  testing.def("half_bits_to_float", &to_float<half_t, half_to_float>, "IEEE half bits -> float32");
  testing.def("float_to_bfloat16_bits", &from_float<bfloat16_t, float_to_bfloat16>, "float32 -> bfloat16 bits (RNE)");
  testing.def("bfloat16_bits_to_float", &to_float<bfloat16_t, bfloat16_to_float>, "bfloat16 bits -> float32");
}

}  // namespace fusionrt::bindings
