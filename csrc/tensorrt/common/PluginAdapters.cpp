#include "tensorrt/common/PluginAdapters.h"

#include <algorithm>

namespace fusionrt::trt {
namespace {

using nvinfer1::DataType;
using nvinfer1::PluginFieldType;

constexpr bool sameCode(FieldType ours, PluginFieldType theirs) {
  return static_cast<int32_t>(ours) == static_cast<int32_t>(theirs);
}
// Fields convert between FieldType and PluginFieldType with a cast (ops/op_fields.h).
static_assert(sameCode(FieldType::kFloat16, PluginFieldType::kFLOAT16) &&
                  sameCode(FieldType::kFloat32, PluginFieldType::kFLOAT32) &&
                  sameCode(FieldType::kFloat64, PluginFieldType::kFLOAT64) &&
                  sameCode(FieldType::kInt8, PluginFieldType::kINT8) &&
                  sameCode(FieldType::kInt16, PluginFieldType::kINT16) &&
                  sameCode(FieldType::kInt32, PluginFieldType::kINT32) &&
                  sameCode(FieldType::kChar, PluginFieldType::kCHAR) &&
                  sameCode(FieldType::kDims, PluginFieldType::kDIMS) &&
                  sameCode(FieldType::kUnknown, PluginFieldType::kUNKNOWN) &&
                  sameCode(FieldType::kBFloat16, PluginFieldType::kBF16) &&
                  sameCode(FieldType::kInt64, PluginFieldType::kINT64) &&
                  sameCode(FieldType::kFloat8, PluginFieldType::kFP8) &&
                  sameCode(FieldType::kInt4, PluginFieldType::kINT4),
              "FieldType must number the field types as nvinfer1::PluginFieldType does");

}  // namespace

nvinfer1::PluginField toPluginField(RawField const& field) {
  return nvinfer1::PluginField{field.name, field.data, static_cast<PluginFieldType>(field.type), field.length};
}

std::vector<RawField> rawFields(nvinfer1::PluginFieldCollection const* fc) {
  if (fc == nullptr || fc->nbFields < 0 || (fc->nbFields > 0 && fc->fields == nullptr)) {
    throw std::invalid_argument("no field collection");
  }
  std::vector<RawField> fields;
  for (int32_t i = 0; i < fc->nbFields; ++i) {
    nvinfer1::PluginField const& field = fc->fields[i];
    fields.push_back(RawField{field.name, static_cast<FieldType>(field.type), field.data, field.length});
  }
  return fields;
}

std::optional<DType> kernelType(DataType type) {
  switch (type) {
    case DataType::kFLOAT: return DType::kFloat32;
    case DataType::kHALF: return DType::kFloat16;
    case DataType::kBF16: return DType::kBFloat16;
    default: return std::nullopt;
  }
}

std::string typeName(DataType type) {
  if (type == DataType::kBOOL) return "bool";
  const std::optional<DType> kernel = kernelType(type);
  return kernel ? dtype_name(*kernel) : "nvinfer1::DataType " + std::to_string(static_cast<int32_t>(type));
}

std::vector<int64_t> sizesOf(nvinfer1::Dims const& dims) {
  return std::vector<int64_t>(dims.d, dims.d + std::max<int32_t>(dims.nbDims, 0));
}

std::vector<int64_t> sizesOf(nvinfer1::DimsExprs const& dims) {
  std::vector<int64_t> sizes;
  for (int32_t i = 0; i < dims.nbDims; ++i) {
    sizes.push_back(dims.d[i]->isConstant() ? dims.d[i]->getConstantValue() : kUnknownDim);
  }
  return sizes;
}

void expectOutputs(int32_t nbOutputs, int32_t expected) {
  if (nbOutputs != expected) {
    throw std::invalid_argument("expected " + std::to_string(expected) + " output" + (expected == 1 ? "" : "s") +
                                ", got " + std::to_string(nbOutputs));
  }
}

void expectInputs(int32_t nbInputs, int32_t expected) {
  if (nbInputs != expected) {
    throw std::invalid_argument("expected " + std::to_string(expected) + " inputs, got " + std::to_string(nbInputs));
  }
}

void expectTensorPosition(int32_t pos, int32_t nbInputs, int32_t nbOutputs) {
  if (pos < 0 || pos >= nbInputs + nbOutputs) {
    throw std::out_of_range("position " + std::to_string(pos) + " of " + std::to_string(nbInputs + nbOutputs));
  }
}

}  // namespace fusionrt::trt
