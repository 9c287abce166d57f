#include "tensorrt/concat_layernorm/ConcatLayerNormPlugin.h"

#include <optional>
#include <stdexcept>

#include "kernels/concat_layernorm.h"
#include "tensorrt/common/PluginAdapters.h"
#include "tensorrt/logging.h"

namespace fusionrt::trt {
using nvinfer1::DataType;

ConcatLayerNormPlugin::ConcatLayerNormPlugin(std::string const& layerName, ConcatLayerNormConfig const& config)
    : PluginV3Base(layerName), mConfig(config) {}

void ConcatLayerNormPlugin::checkInputShapes(std::vector<std::vector<int64_t>> const& shapes) const {
  concat_layernorm_output_shape(mConfig, shapes);
}

int32_t ConcatLayerNormPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs,
                                                  DataType const* inputTypes, int32_t nbInputs) const noexcept {
  try {
    expectOutputs(nbOutputs, 1);
    expectInputs(nbInputs, mConfig.nb_node_inputs());
    // Strongly typed networks (the only kind TensorRT 11 builds) take the types from here, so a
    // mismatch is reported now rather than as "no implementation" later.
    if (!kernelType(inputTypes[0])) {
      throw std::invalid_argument("inputs have type " + typeName(inputTypes[0]) +
                                  ", expected float32, float16 or bfloat16");
    }
    for (int32_t i = 1; i < nbInputs; ++i) {
      if (inputTypes[i] != inputTypes[0]) {
        throw std::invalid_argument("input " + std::to_string(i) + " has type " + typeName(inputTypes[i]) +
                                    ", expected " + typeName(inputTypes[0]) + " (the type of input 0)");
      }
    }
    outputTypes[0] = inputTypes[0];
    return 0;
  } catch (std::exception const& e) {
    logException(logName(), "getOutputDataTypes", e);
  }
  return -1;
}

int32_t ConcatLayerNormPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
                                               nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
                                               nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                                               nvinfer1::IExprBuilder& exprBuilder) noexcept {
  try {
    // Sizes known at build time are checked now; the rest in onShapeChange.
    expectOutputs(nbOutputs, 1);
    checkInputShapes(shapesOf(inputs, nbInputs));
    outputs[0] = outputDimsOf(Spec::kOutputShape, inputs, mConfig.num_inputs, exprBuilder);
    return 0;
  } catch (std::exception const& e) {
    logException(logName(), "getOutputShapes", e);
  }
  return -1;
}

bool ConcatLayerNormPlugin::supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut,
                                                      int32_t nbInputs, int32_t nbOutputs) noexcept {
  try {
    expectTensorPosition(pos, nbInputs, nbOutputs);
    nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
    // The kernel reads rows of contiguous features, and weight and bias in the inputs' type.
    return desc.format == nvinfer1::TensorFormat::kLINEAR && kernelType(desc.type) &&
           (pos == 0 || desc.type == inOut[0].desc.type);
  } catch (std::exception const& e) {
    logException(logName(), "supportsFormatCombination", e);
  }
  return false;
}

size_t ConcatLayerNormPlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* /*inputs*/,
                                               int32_t /*nbInputs*/,
                                               nvinfer1::DynamicPluginTensorDesc const* /*outputs*/,
                                               int32_t /*nbOutputs*/) const noexcept {
  return 0;  // one pass over registers and shared memory: no scratch
}

int32_t ConcatLayerNormPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
                                       nvinfer1::PluginTensorDesc const* /*outputDesc*/, void const* const* inputs,
                                       void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept {
  try {
    // Shapes were validated in onShapeChange; the kernel checks the pointers and sizes it is given.
    ConcatLayerNormParams params;
    params.num_inputs = mConfig.num_inputs;
    params.rows = inputDesc[0].dims.d[0];
    for (int32_t i = 0; i < mConfig.num_inputs; ++i) {
      params.inputs[i] = inputs[i];
      params.widths[i] = inputDesc[i].dims.d[1];
      params.row_strides[i] = params.widths[i];  // linear format: rows are packed
    }
    params.weight = mConfig.has_weight ? inputs[mConfig.weight_index()] : nullptr;
    params.bias = mConfig.has_bias ? inputs[mConfig.bias_index()] : nullptr;
    params.output = outputs[0];
    params.output_row_stride = params.total_width();
    params.eps = mConfig.eps;
    const std::optional<DType> dtype = kernelType(inputDesc[0].type);
    if (!dtype) throw std::invalid_argument("unsupported input type " + typeName(inputDesc[0].type));
    params.dtype = *dtype;
    concat_layernorm_cuda(params, stream);
    return 0;
  } catch (std::exception const& e) {
    logException(logName(), "enqueue", e);
  }
  return -1;
}

nvinfer1::PluginFieldCollection const* ConcatLayerNormPlugin::getFieldsToSerialize() noexcept {
  try {
    return mSerialFields.update(concat_layernorm_fields(mConfig));
  } catch (std::exception const& e) {
    logException(logName(), "getFieldsToSerialize", e);
  }
  return nullptr;
}

}  // namespace fusionrt::trt
