// A borrowed view of an array handed in from Python (numpy array or any DLPack producer), checked
// against what a kernel expects, with errors that say what was expected and what came.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "dlpack_abi.h"
#include "ops/op_args.h"

namespace fusionrt::bindings {

// An array handed in from Python, viewed as the ops take it; `owner` keeps the producer's buffer (or
// DLPack capsule) alive while the view is used.
struct ArrayView : ArrayArg {
  pybind11::object owner;
};

// An array of one of the kernels' floating-point types.
struct TensorView : TensorArg {
  pybind11::object owner;
};

// Views `obj` (a numpy array or an object with __dlpack__). `cuda_stream` is the stream the kernel
// will run on, handed to DLPack producers so they can order their pending work before it.
TensorView view_tensor(pybind11::handle obj, const std::string& name, intptr_t cuda_stream);

// Views `obj` as a boolean mask (numpy bool_ or DLPack bool): one byte per element, 0 or 1.
ArrayView view_mask(pybind11::handle obj, const std::string& name, intptr_t cuda_stream);

// Views `obj` whatever its element type, reported in DLPack's terms in `type`: a numpy array, a
// DLPack producer, or a __cuda_array_interface__ producer (CuPy, Numba, ...). For CUDA memory,
// `cuda_stream` is the stream that will read it: DLPack producers order their pending work before
// it, and an interface's `stream` is made to precede it.
ArrayView view_array(pybind11::handle obj, const std::string& name, intptr_t cuda_stream, dlpack::DataType& type);

// A new C-contiguous numpy array of `dtype` (float32 / float16 / float64), for CPU outputs.
pybind11::array new_numpy_array(DType dtype, const std::vector<int64_t>& shape);

}  // namespace fusionrt::bindings
