// TensorRT plugin for fused multi-head attention: an IPluginV3 adapter over fusionrt::attention_cuda
// (kernels/attention.h). It validates, describes shapes and formats, and launches the kernel; the
// arithmetic lives in the kernel only.
//
// Node: inputs q (batch, heads, Lq, head_dim), k and v (batch, heads, Lk, head_dim) in float32,
// float16 or bfloat16, then the key padding mask (batch, Lk) bool (True = attend) when has_mask; one
// output shaped and typed like q. Its rules, fields included: ops/attention_contract.h.
#pragma once

#include <NvInferRuntime.h>

#include <array>
#include <string>
#include <vector>

#include "ops/attention_contract.h"
#include "tensorrt/common/PluginBase.h"

namespace fusionrt::trt {

class MultiheadAttentionPlugin final : public PluginV3Base<MultiheadAttentionPlugin> {
 public:
  using Spec = MultiheadAttentionContract;
  static MultiheadAttentionConfig parseFields(RawField const* fields, int32_t count) { return parse_multihead_attention_fields(fields, count); }

  MultiheadAttentionPlugin(std::string const& layerName, MultiheadAttentionConfig const& config);
  MultiheadAttentionPlugin(MultiheadAttentionPlugin const&) = default;

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
  MultiheadAttentionConfig mConfig;
  SerialFields<2> mSerialFields;
};

using MultiheadAttentionPluginCreator = PluginCreatorV3<MultiheadAttentionPlugin>;

}  // namespace fusionrt::trt
