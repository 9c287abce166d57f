// torch tensors as the ops' arguments (ops/op_args.h), and the ops' errors as the Python exceptions
// PyTorch raises for c10::ValueError / c10::TypeError.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <string>
#include <utility>

#include "ops/op_args.h"

namespace fusionrt::torch_ops {

// `tensor` itself when its last dim is contiguous (the kernels' one layout demand), else a contiguous copy.
at::Tensor with_contiguous_features(const at::Tensor& tensor);

// A view of a float32 / float16 / bfloat16 / float64 tensor; throws c10::TypeError for other dtypes.
TensorArg tensor_arg(const at::Tensor& tensor, std::string name);

// A view of a bool tensor (one byte per element); throws c10::TypeError for other dtypes.
ArrayArg mask_arg(const at::Tensor& tensor, std::string name);

// Runs `body`, turning fusionrt::ValueError / TypeError into their c10 counterparts.
template <typename Body>
auto raising_python_errors(Body&& body) {
  try {
    return std::forward<Body>(body)();
  } catch (const TypeError& error) {
    C10_THROW_ERROR(TypeError, error.what());
  } catch (const ValueError& error) {
    C10_THROW_ERROR(ValueError, error.what());
  }
}

}  // namespace fusionrt::torch_ops
