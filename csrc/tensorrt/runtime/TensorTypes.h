// Element types of engine I/O tensors, free of TensorRT types so that the byte-size rules the runtime
// allocates by are compiled into fusionrt._C and unit-tested on machines without TensorRT.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fusionrt::trt {

// Same numbering as nvinfer1::DataType (EngineRunner.cpp asserts it), so an engine's tensor type
// converts with a cast. kFP4 and kE8M0 exist from TensorRT 11 on.
enum class TensorType : int32_t {
  kFloat32 = 0,
  kFloat16 = 1,
  kInt8 = 2,
  kInt32 = 3,
  kBool = 4,
  kUInt8 = 5,
  kFP8 = 6,
  kBFloat16 = 7,
  kInt64 = 8,
  kInt4 = 9,
  kFP4 = 10,
  kE8M0 = 11,
};

inline constexpr int32_t kNbTensorTypes = 12;

// numpy's spelling where numpy has the type ("float32", "bool", ...), else TensorRT's ("fp8", "int4").
char const* tensorTypeName(TensorType type);

// Throws std::invalid_argument for a value outside TensorType, e.g. from a newer TensorRT.
TensorType tensorTypeFromInt(int32_t value);

int32_t tensorTypeBits(TensorType type);

// Bytes a dense tensor of `shape` occupies; sub-byte types are packed, so the total is rounded up to
// whole bytes. Throws std::invalid_argument on a negative (unresolved) dim or a size that overflows.
size_t tensorBytes(TensorType type, std::vector<int64_t> const& shape);

}  // namespace fusionrt::trt
