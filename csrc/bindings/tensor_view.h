// A borrowed view of an array handed in from Python (numpy array or any DLPack producer), checked
// against what a kernel expects, with errors that say what was expected and what came.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dlpack_abi.h"
#include "kernels/numeric.h"

namespace fusionrt::bindings {

enum class DeviceKind { kCPU, kCUDA };

struct Device {
  DeviceKind kind = DeviceKind::kCPU;
  int index = 0;
  bool operator==(const Device& other) const { return kind == other.kind && index == other.index; }
  std::string str() const;
};

// The memory, shape and device of an array handed in from Python, whatever its element type.
struct ArrayView {
  std::string name;  // for error messages: "inputs[1]", "weight", ...
  void* data = nullptr;
  Device device;
  bool writeable = true;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements
  pybind11::object owner;        // keeps the producer's buffer (or DLPack capsule) alive

  int64_t dim(size_t i) const { return shape.at(i); }
  // Throws ValueError unless the view has exactly `ndim` dims; `layout` names them, e.g. "(batch, features)".
  void expect_ndim(size_t ndim, const char* layout) const;
  // Throws ValueError unless the last dim is contiguous (stride 1), so rows can be read as spans.
  void expect_inner_contiguous() const;
};

// An array of one of the kernels' floating-point types.
struct TensorView : ArrayView {
  DType dtype = DType::kFloat32;
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

// Throws ValueError unless `view` is on the device of `reference`.
void expect_same_device(const ArrayView& view, const ArrayView& reference);

// Throws TypeError / ValueError unless `view` has the dtype and device of `reference`.
void expect_same_dtype_and_device(const TensorView& view, const TensorView& reference);

// A new C-contiguous numpy array of `dtype` (float32 / float16 / float64), for CPU outputs.
pybind11::array new_numpy_array(DType dtype, const std::vector<int64_t>& shape);

}  // namespace fusionrt::bindings
