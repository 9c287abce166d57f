// TensorRT plugin for fused concat + LayerNorm: an IPluginV3 adapter over
// fusionrt::concat_layernorm_cuda (kernels/concat_layernorm.h). It validates, describes shapes and
// formats, and launches the kernel; the arithmetic lives in the kernel only.
//
// Node: inputs x_0 .. x_{n-1} (batch, d_i), then weight and bias (sum d_i,) when has_weight /
// has_bias; one output (batch, sum d_i). Its rules, fields included: ops/concat_layernorm_contract.h.
#pragma once

#include <NvInferRuntime.h>

#include <array>
#include <string>
#include <vector>

#include "ops/concat_layernorm_contract.h"
#include "tensorrt/common/PluginBase.h"

namespace fusionrt::trt {

class ConcatLayerNormPlugin final : public PluginV3Base<ConcatLayerNormPlugin> {
 public:
  using Spec = ConcatLayerNormContract;
  static ConcatLayerNormConfig parseFields(RawField const* fields, int32_t count) { return parse_concat_layernorm_fields(fields, count); }

  ConcatLayerNormPlugin(std::string const& layerName, ConcatLayerNormConfig const& config);
  ConcatLayerNormPlugin(ConcatLayerNormPlugin const&) = default;

  // Throws std::invalid_argument unless the input shapes (kUnknownDim where not known yet) follow the
  // node's rules.
  void checkInputShapes(std::vector<std::vector<int64_t>> const& shapes) const;

  // IPluginV3OneBuild
  int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
                             int32_t nbInputs) const noexcept override;
  int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
                          int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                          nvinfer1::IExprBuilder& exprBuilder) noexcept override;
  bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                 int32_t nbOutputs) noexcept override;
  size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                          nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

  // IPluginV3OneRuntime
  int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                  void const* const* inputs, void* const* outputs, void* workspace,
                  cudaStream_t stream) noexcept override;
  nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

 private:
  ConcatLayerNormConfig mConfig;
  SerialFields<4> mSerialFields;
};

using ConcatLayerNormPluginCreator = PluginCreatorV3<ConcatLayerNormPlugin>;

}  // namespace fusionrt::trt
