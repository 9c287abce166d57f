#include "tensor_args.h"

#include <c10/core/ScalarType.h>

namespace fusionrt::torch_ops {
namespace {

ArrayArg array_arg(const at::Tensor& tensor, std::string name) {
  ArrayArg arg;
  arg.name = std::move(name);
  arg.data = tensor.data_ptr();
  if (tensor.is_cuda()) {
    arg.device = {DeviceKind::kCUDA, tensor.get_device()};
  } else if (!tensor.is_cpu()) {
    TORCH_CHECK_VALUE(false, arg.name, " is on ", tensor.device().str(), ", expected a CPU or CUDA tensor");
  }
  const auto sizes = tensor.sizes();
  const auto strides = tensor.strides();
  arg.shape.assign(sizes.begin(), sizes.end());
  arg.strides.assign(strides.begin(), strides.end());
  return arg;
}

std::string dtype_str(c10::ScalarType type) { return std::string(c10::getDtypeNames(type).first); }

}  // namespace

at::Tensor with_contiguous_features(const at::Tensor& tensor) {
  const bool contiguous_features = tensor.dim() == 0 || tensor.size(-1) <= 1 || tensor.stride(-1) == 1;
  return contiguous_features ? tensor : tensor.contiguous();
}

TensorArg tensor_arg(const at::Tensor& tensor, std::string name) {
  TensorArg arg;
  switch (tensor.scalar_type()) {
    case c10::ScalarType::Float: arg.dtype = DType::kFloat32; break;
    case c10::ScalarType::Half: arg.dtype = DType::kFloat16; break;
    case c10::ScalarType::BFloat16: arg.dtype = DType::kBFloat16; break;
    case c10::ScalarType::Double: arg.dtype = DType::kFloat64; break;
    default:
      TORCH_CHECK_TYPE(false, name, " has dtype ", dtype_str(tensor.scalar_type()),
                       ", expected float32, float16, bfloat16 or float64");
  }
  static_cast<ArrayArg&>(arg) = array_arg(tensor, std::move(name));
  return arg;
}

ArrayArg mask_arg(const at::Tensor& tensor, std::string name) {
  TORCH_CHECK_TYPE(tensor.scalar_type() == c10::ScalarType::Bool, name, " has dtype ",
                   dtype_str(tensor.scalar_type()), ", expected bool");
  return array_arg(tensor, std::move(name));
}

}  // namespace fusionrt::torch_ops
