// TensorRT plugin for fused concat + LayerNorm: an IPluginV3 adapter over
// fusionrt::concat_layernorm_cuda (kernels/concat_layernorm.h). It validates, describes shapes and
// formats, and launches the kernel; the arithmetic lives in the kernel only.
//
// Node: inputs x_0 .. x_{n-1} (batch, d_i), then weight and bias (sum d_i,) when has_weight /
// has_bias; one output (batch, sum d_i). Fields and their rules: ConcatLayerNormFields.h.
#pragma once

#include <NvInferRuntime.h>

#include <array>
#include <string>
#include <vector>

#include "tensorrt/concat_layernorm/ConcatLayerNormFields.h"

namespace fusionrt::trt {

class ConcatLayerNormPlugin final : public nvinfer1::IPluginV3,
                                    public nvinfer1::IPluginV3OneCore,
                                    public nvinfer1::IPluginV3OneBuild,
                                    public nvinfer1::IPluginV3OneRuntime {
 public:
  ConcatLayerNormPlugin(std::string const& layerName, ConcatLayerNormConfig const& config);
  ConcatLayerNormPlugin(ConcatLayerNormPlugin const&) = default;
  ConcatLayerNormPlugin& operator=(ConcatLayerNormPlugin const&) = delete;
  ~ConcatLayerNormPlugin() override = default;

  // IPluginV3
  nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
  nvinfer1::IPluginV3* clone() noexcept override;

  // IPluginV3OneCore
  char const* getPluginName() const noexcept override;
  char const* getPluginVersion() const noexcept override;
  char const* getPluginNamespace() const noexcept override;

  // IPluginV3OneBuild
  int32_t getNbOutputs() const noexcept override;
  int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
                             int32_t nbInputs) const noexcept override;
  int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
                          int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                          nvinfer1::IExprBuilder& exprBuilder) noexcept override;
  bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                 int32_t nbOutputs) noexcept override;
  int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                          nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
  size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                          nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

  // IPluginV3OneRuntime
  int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
                        int32_t nbOutputs) noexcept override;
  int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                  void const* const* inputs, void* const* outputs, void* workspace,
                  cudaStream_t stream) noexcept override;
  nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
  nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

 private:
  // "FusionrtConcatLayerNorm '<layer>'": errors name the layer, which is what users can find.
  std::string mLogName;
  ConcatLayerNormConfig mConfig;
  // getFieldsToSerialize's answer, pointing into mConfig: rebuilt on every call, so a clone never
  // hands out pointers into the plugin it was copied from.
  std::array<nvinfer1::PluginField, 4> mSerialFields;
  nvinfer1::PluginFieldCollection mSerialCollection{};
};

class ConcatLayerNormPluginCreator final : public nvinfer1::IPluginCreatorV3One {
 public:
  ConcatLayerNormPluginCreator();
  ConcatLayerNormPluginCreator(ConcatLayerNormPluginCreator const&) = delete;
  ConcatLayerNormPluginCreator& operator=(ConcatLayerNormPluginCreator const&) = delete;
  ~ConcatLayerNormPluginCreator() override = default;

  char const* getPluginName() const noexcept override;
  char const* getPluginVersion() const noexcept override;
  char const* getPluginNamespace() const noexcept override;
  nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
  nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                    nvinfer1::TensorRTPhase phase) noexcept override;

 private:
  std::vector<nvinfer1::PluginField> mFieldNames;
  nvinfer1::PluginFieldCollection mFieldCollection{};
};

}  // namespace fusionrt::trt
