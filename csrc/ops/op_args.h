// The arguments of fusionrt's ops as every front end hands them over (pybind11 for numpy / DLPack,
// the PyTorch dispatcher for torch tensors): borrowed memory with its shape, strides and device, and
// the checks with errors that say what was expected and what came. Framework-free, so both front ends
// validate with the same code and the same words.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/numeric.h"
#include "shape_rule.h"

namespace fusionrt {

// Bad arguments, raised as Python's ValueError / TypeError by each front end.
struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

enum class DeviceKind { kCPU, kCUDA };

struct Device {
  DeviceKind kind = DeviceKind::kCPU;
  int index = 0;
  bool operator==(const Device& other) const { return kind == other.kind && index == other.index; }
  bool is_cpu() const { return kind == DeviceKind::kCPU; }
  std::string str() const;
};

// Borrowed memory of any element type: the caller keeps it alive for the call.
struct ArrayArg {
  std::string name;  // for error messages: "inputs[1]", "weight", ...
  void* data = nullptr;
  Device device;
  bool writeable = true;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements

  int64_t dim(size_t i) const { return shape.at(i); }
  // Throws ValueError unless there are exactly `ndim` dims; `layout` names them, e.g. "(batch, features)".
  void expect_ndim(size_t ndim, const char* layout) const;
  // Throws ValueError unless the last dim is contiguous (stride 1), so rows can be read as spans.
  void expect_inner_contiguous() const;
};

// Memory of one of the kernels' floating-point types.
struct TensorArg : ArrayArg {
  DType dtype = DType::kFloat32;
};

// Throws ValueError unless `arg` is on the device of `reference`.
void expect_same_device(const ArrayArg& arg, const ArrayArg& reference);

// Throws TypeError / ValueError unless `arg` has the dtype and device of `reference`.
void expect_same_dtype_and_device(const TensorArg& arg, const TensorArg& reference);

// Throws unless `out` can take an op's output: `ndim` dims named by `layout`, features contiguous, the
// dtype and device of `reference`, `shape` (`expected` says which in messages), writeable.
void expect_output(const TensorArg& out, const TensorArg& reference, const std::vector<int64_t>& shape,
                   const char* layout, const std::string& expected);

// Throws ValueError: `arg` is CUDA memory, but this build has no CUDA kernels.
[[noreturn]] void throw_built_without_cuda(const ArrayArg& arg);

}  // namespace fusionrt
