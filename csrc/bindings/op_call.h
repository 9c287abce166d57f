// What the ops' Python entry points share after the arguments are checked: the output (out= or a new
// numpy array) and the run without the GIL.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>

#include "tensor_view.h"

namespace fusionrt::bindings {

// Runs a checked op call (ops/*_op.h) into `out`, or into a new numpy array when `out` is None (CPU
// inputs only: CUDA outputs must be given); returns what it wrote.
template <typename Call>
pybind11::object run_into(Call& call, const pybind11::object& out, intptr_t stream) {
  pybind11::object result = out;
  if (out.is_none()) {
    const TensorArg& reference = call.reference();
    if (!reference.device.is_cpu()) {
      throw pybind11::value_error("out= is required for inputs on " + reference.device.str());
    }
    result = new_numpy_array(reference.dtype, call.output_shape());
  }
  const TensorView output = view_tensor(result, "out", stream);
  call.set_output(output);
  pybind11::gil_scoped_release release;
  call.run(stream);
  return result;
}

}  // namespace fusionrt::bindings
