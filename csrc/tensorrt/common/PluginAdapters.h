// What every fusionrt IPluginV3 adapter shares: conversions between TensorRT's plugin types and the
// TensorRT-free ones of the op contracts (ops/op_fields.h, ops/shape_rule.h) and kernels/numeric.h,
// and the field collections a creator declares and a plugin serialises.
#pragma once

#include <NvInferRuntime.h>

#include <array>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/numeric.h"
#include "ops/op_fields.h"
#include "ops/shape_rule.h"

namespace fusionrt::trt {

nvinfer1::PluginField toPluginField(RawField const& field);

// The fields of `fc` (as TensorRT hands them to createPlugin); throws std::invalid_argument for a
// missing or malformed collection.
std::vector<RawField> rawFields(nvinfer1::PluginFieldCollection const* fc);

// The kernel's element type for a TensorRT float type it computes in (float32, float16, bfloat16);
// none for the rest.
std::optional<DType> kernelType(nvinfer1::DataType type);

// "float16", "bool", or "nvinfer1::DataType <code>" for a type without a kernel name.
std::string typeName(nvinfer1::DataType type);

// Shapes for the TRT-free rules, with kUnknownDim where TensorRT does not know a size yet (Dims
// already say -1 there; an expression is known only when it is a constant).
std::vector<int64_t> sizesOf(nvinfer1::Dims const& dims);
std::vector<int64_t> sizesOf(nvinfer1::DimsExprs const& dims);
inline std::vector<int64_t> sizesOf(nvinfer1::PluginTensorDesc const& desc) { return sizesOf(desc.dims); }
inline std::vector<int64_t> sizesOf(nvinfer1::DynamicPluginTensorDesc const& desc) { return sizesOf(desc.desc.dims); }

template <typename Tensor>
std::vector<std::vector<int64_t>> shapesOf(Tensor const* tensors, int32_t count) {
  if (count < 0 || (count > 0 && tensors == nullptr)) {
    throw std::invalid_argument("invalid tensor list of " + std::to_string(count));
  }
  std::vector<std::vector<int64_t>> shapes;
  for (int32_t i = 0; i < count; ++i) shapes.push_back(sizesOf(tensors[i]));
  return shapes;
}

// An op contract's output shape rule (ops/shape_rule.h) as TensorRT dimension expressions over the
// node's `inputs`, of which the first `nbDataInputs` are the contract's data inputs.
template <size_t N>
nvinfer1::DimsExprs outputDimsOf(std::array<OutputDim, N> const& rule, nvinfer1::DimsExprs const* inputs,
                                 int32_t nbDataInputs, nvinfer1::IExprBuilder& exprBuilder) {
  static_assert(N <= static_cast<size_t>(nvinfer1::Dims::MAX_DIMS), "more output dims than TensorRT allows");
  nvinfer1::DimsExprs dims;
  dims.nbDims = static_cast<int32_t>(N);
  for (size_t i = 0; i < N; ++i) {
    dims.d[i] = evaluate_output_dim(
        rule[i], nbDataInputs, [&](int32_t input, int32_t axis) { return inputs[input].d[axis]; },
        [&](nvinfer1::IDimensionExpr const* a, nvinfer1::IDimensionExpr const* b) {
          return exprBuilder.operation(nvinfer1::DimensionOperation::kSUM, *a, *b);
        });
  }
  return dims;
}

// Throws std::invalid_argument unless TensorRT asks about exactly `expected` outputs / inputs.
void expectOutputs(int32_t nbOutputs, int32_t expected);
void expectInputs(int32_t nbInputs, int32_t expected);

// Throws std::out_of_range unless `pos` indexes one of supportsFormatCombination's tensors.
void expectTensorPosition(int32_t pos, int32_t nbInputs, int32_t nbOutputs);

// The fields a creator declares (getFieldNames): what the ONNX parser collects from a node's
// attributes. Fixed at construction, so the collection's pointers stay valid.
class DeclaredFields {
 public:
  template <size_t N>
  explicit DeclaredFields(std::array<FieldSpec, N> const& specs) {
    for (FieldSpec const& spec : specs) mFields.push_back(toPluginField(RawField{spec.name, spec.type, nullptr, 1}));
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
  }
  DeclaredFields(DeclaredFields const&) = delete;
  DeclaredFields& operator=(DeclaredFields const&) = delete;

  nvinfer1::PluginFieldCollection const* collection() const { return &mCollection; }

 private:
  std::vector<nvinfer1::PluginField> mFields;
  nvinfer1::PluginFieldCollection mCollection{};
};

// getFieldsToSerialize's answer, pointing into the plugin's config: rebuilt on every call, so a
// clone never hands out pointers into the plugin it was copied from.
template <size_t N>
class SerialFields {
 public:
  nvinfer1::PluginFieldCollection const* update(std::array<RawField, N> const& fields) {
    for (size_t i = 0; i < N; ++i) mFields[i] = toPluginField(fields[i]);
    mCollection.nbFields = static_cast<int32_t>(N);
    mCollection.fields = mFields.data();
    return &mCollection;
  }

 private:
  std::array<nvinfer1::PluginField, N> mFields;
  nvinfer1::PluginFieldCollection mCollection{};
};

}  // namespace fusionrt::trt
