#include "op_args.h"

namespace fusionrt {

std::string Device::str() const { return kind == DeviceKind::kCPU ? "cpu" : "cuda:" + std::to_string(index); }

void ArrayArg::expect_ndim(size_t ndim, const char* layout) const {
  if (shape.size() != ndim) {
    throw ValueError(name + " has " + std::to_string(shape.size()) + " dims " + shape_str(shape) + ", expected " +
                     std::to_string(ndim) + " " + layout);
  }
}

void ArrayArg::expect_inner_contiguous() const {
  // Strides of empty arrays are arbitrary (numpy may report 0); there is nothing to read.
  for (const int64_t extent : shape) {
    if (extent == 0) return;
  }
  if (!shape.empty() && shape.back() > 1 && strides.back() != 1) {
    throw ValueError(name + " has stride " + std::to_string(strides.back()) +
                     " along its last dim, expected 1 (contiguous features)");
  }
}

void expect_same_device(const ArrayArg& arg, const ArrayArg& reference) {
  if (!(arg.device == reference.device)) {
    throw ValueError(arg.name + " is on " + arg.device.str() + ", expected " + reference.device.str() +
                     " (the device of " + reference.name + ")");
  }
}

void expect_same_dtype_and_device(const TensorArg& arg, const TensorArg& reference) {
  if (arg.dtype != reference.dtype) {
    throw TypeError(arg.name + " is " + dtype_name(arg.dtype) + ", expected " + dtype_name(reference.dtype) +
                    " (the dtype of " + reference.name + ")");
  }
  expect_same_device(arg, reference);
}

void expect_output(const TensorArg& out, const TensorArg& reference, const std::vector<int64_t>& shape,
                   const char* layout, const std::string& expected) {
  out.expect_ndim(shape.size(), layout);
  out.expect_inner_contiguous();
  expect_same_dtype_and_device(out, reference);
  if (out.shape != shape) throw ValueError("out has shape " + shape_str(out.shape) + ", expected " + expected);
  if (!out.writeable) throw ValueError("out is read-only");
}

void throw_built_without_cuda(const ArrayArg& arg) {
  throw ValueError(arg.name + " is on " + arg.device.str() + " but fusionrt was built without CUDA");
}

}  // namespace fusionrt
