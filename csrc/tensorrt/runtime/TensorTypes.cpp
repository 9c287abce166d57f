#include "tensorrt/runtime/TensorTypes.h"

#include <stdexcept>

#include "tensorrt/runtime/ShapeRules.h"

namespace fusionrt::trt {

char const* tensorTypeName(TensorType type) {
  switch (type) {
    case TensorType::kFloat32: return "float32";
    case TensorType::kFloat16: return "float16";
    case TensorType::kInt8: return "int8";
    case TensorType::kInt32: return "int32";
    case TensorType::kBool: return "bool";
    case TensorType::kUInt8: return "uint8";
    case TensorType::kFP8: return "fp8";
    case TensorType::kBFloat16: return "bfloat16";
    case TensorType::kInt64: return "int64";
    case TensorType::kInt4: return "int4";
    case TensorType::kFP4: return "fp4";
    case TensorType::kE8M0: return "e8m0";
  }
  return "unknown";
}

TensorType tensorTypeFromInt(int32_t value) {
  if (value < 0 || value >= kNbTensorTypes) {
    throw std::invalid_argument("TensorRT data type " + std::to_string(value) +
                                " is unknown to this fusionrt (built for types 0.." +
                                std::to_string(kNbTensorTypes - 1) + ")");
  }
  return static_cast<TensorType>(value);
}

int32_t tensorTypeBits(TensorType type) {
  switch (type) {
    case TensorType::kInt4:
    case TensorType::kFP4: return 4;
    case TensorType::kInt8:
    case TensorType::kBool:
    case TensorType::kUInt8:
    case TensorType::kFP8:
    case TensorType::kE8M0: return 8;
    case TensorType::kFloat16:
    case TensorType::kBFloat16: return 16;
    case TensorType::kFloat32:
    case TensorType::kInt32: return 32;
    case TensorType::kInt64: return 64;
  }
  throw std::invalid_argument("TensorRT data type " + std::to_string(static_cast<int32_t>(type)) + " has no size");
}

size_t tensorBytes(TensorType type, std::vector<int64_t> const& shape) {
  auto const elements = static_cast<size_t>(volume(shape));
  auto const bits = static_cast<size_t>(tensorTypeBits(type));
  if (elements > (SIZE_MAX - 7) / bits) {
    throw std::invalid_argument("a " + std::string(tensorTypeName(type)) + " tensor of shape " + shapeString(shape) +
                                " does not fit in memory");
  }
  return (elements * bits + 7) / 8;
}

}  // namespace fusionrt::trt
