#include "tensorrt/attention/MultiheadAttentionPlugin.h"

#include <optional>
#include <stdexcept>

#include "kernels/attention.h"
#include "tensorrt/logging.h"

namespace fusionrt::trt {
namespace {

using nvinfer1::DataType;
using Config = MultiheadAttentionConfig;

// Element strides of a linear-format (batch, heads, length, head_dim) tensor: packed, row-major.
BhsStrides packedStrides(nvinfer1::Dims const& dims) {
  BhsStrides strides;
  strides.seq = dims.d[3];
  strides.head = dims.d[2] * strides.seq;
  strides.batch = dims.d[1] * strides.head;
  return strides;
}

}  // namespace

MultiheadAttentionPlugin::MultiheadAttentionPlugin(std::string const& layerName, MultiheadAttentionConfig const& config)
    : PluginV3Base(layerName), mConfig(config) {}

void MultiheadAttentionPlugin::checkInputShapes(std::vector<std::vector<int64_t>> const& shapes) const {
  multihead_attention_output_shape(mConfig, shapes);
}

int32_t MultiheadAttentionPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs,
                                                     DataType const* inputTypes, int32_t nbInputs) const noexcept {
  try {
    expectOutputs(nbOutputs, 1);
    expectInputs(nbInputs, mConfig.nb_node_inputs());
    // Strongly typed networks (the only kind TensorRT 11 builds) take the types from here, so a
    // mismatch is reported now rather than as "no implementation" later.
    if (!kernelType(inputTypes[Config::kQ])) {
      throw std::invalid_argument("q has type " + typeName(inputTypes[Config::kQ]) +
                                  ", expected float32, float16 or bfloat16");
    }
    for (int32_t i : {Config::kK, Config::kV}) {
      if (inputTypes[i] != inputTypes[Config::kQ]) {
        throw std::invalid_argument(std::string(i == Config::kK ? "k" : "v") + " has type " +
                                    typeName(inputTypes[i]) + ", expected " + typeName(inputTypes[Config::kQ]) +
                                    " (the type of q)");
      }
    }
    if (mConfig.has_mask && inputTypes[Config::kMask] != DataType::kBOOL) {
      throw std::invalid_argument("key_padding_mask has type " + typeName(inputTypes[Config::kMask]) +
                                  ", expected bool");
    }
    outputTypes[0] = inputTypes[Config::kQ];
    return 0;
  } catch (std::exception const& e) {
    logException(logName(), "getOutputDataTypes", e);
  }
  return -1;
}

int32_t MultiheadAttentionPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
                                                  nvinfer1::DimsExprs const* /*shapeInputs*/,
                                                  int32_t /*nbShapeInputs*/, nvinfer1::DimsExprs* outputs,
                                                  int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept {
  try {
    // Sizes known at build time are checked now; the rest in onShapeChange.
    expectOutputs(nbOutputs, 1);
    checkInputShapes(shapesOf(inputs, nbInputs));
    outputs[0] = outputDimsOf(Spec::kOutputShape, inputs, Config::kNbDataInputs, exprBuilder);
    return 0;
  } catch (std::exception const& e) {
    logException(logName(), "getOutputShapes", e);
  }
  return -1;
}

bool MultiheadAttentionPlugin::supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut,
                                                         int32_t nbInputs, int32_t nbOutputs) noexcept {
  try {
    expectTensorPosition(pos, nbInputs, nbOutputs);
    nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
    // The kernel reads packed rows of head_dim features, and one byte per key of the mask.
    if (desc.format != nvinfer1::TensorFormat::kLINEAR) return false;
    if (pos == Config::kQ) return kernelType(desc.type).has_value();
    if (mConfig.has_mask && pos == Config::kMask) return desc.type == DataType::kBOOL;
    // k, v and the output: q's type.
    return desc.type == inOut[Config::kQ].desc.type;
  } catch (std::exception const& e) {
    logException(logName(), "supportsFormatCombination", e);
  }
  return false;
}

size_t MultiheadAttentionPlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* /*inputs*/,
                                                  int32_t /*nbInputs*/,
                                                  nvinfer1::DynamicPluginTensorDesc const* /*outputs*/,
                                                  int32_t /*nbOutputs*/) const noexcept {
  return 0;  // one pass of online softmax over shared-memory tiles: no scratch
}

int32_t MultiheadAttentionPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
                                          nvinfer1::PluginTensorDesc const* /*outputDesc*/, void const* const* inputs,
                                          void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept {
  try {
    // Shapes were validated in onShapeChange; the kernel checks the pointers and sizes it is given.
    nvinfer1::Dims const& q = inputDesc[Config::kQ].dims;
    nvinfer1::Dims const& k = inputDesc[Config::kK].dims;
    AttentionParams params;
    params.q = inputs[Config::kQ];
    params.k = inputs[Config::kK];
    params.v = inputs[Config::kV];
    params.out = outputs[0];
    params.q_strides = packedStrides(q);
    params.k_strides = packedStrides(k);
    params.v_strides = packedStrides(inputDesc[Config::kV].dims);
    params.out_strides = params.q_strides;  // the output is shaped like q
    params.batch = q.d[0];
    params.heads = q.d[1];
    params.lq = q.d[2];
    params.lk = k.d[2];
    params.head_dim = q.d[3];
    if (mConfig.has_mask) {
      // TensorRT bools are one byte, 0 or 1: the kernel's mask layout, keys packed per batch item.
      params.key_mask = static_cast<uint8_t const*>(inputs[Config::kMask]);
      params.key_mask_batch_stride = params.lk;
    }
    params.scale = mConfig.scale;
    const std::optional<DType> dtype = kernelType(inputDesc[Config::kQ].type);
    if (!dtype) throw std::invalid_argument("unsupported input type " + typeName(inputDesc[Config::kQ].type));
    params.dtype = *dtype;
    attention_cuda(params, stream);
    return 0;
  } catch (std::exception const& e) {
    logException(logName(), "enqueue", e);
  }
  return -1;
}

nvinfer1::PluginFieldCollection const* MultiheadAttentionPlugin::getFieldsToSerialize() noexcept {
  try {
    return mSerialFields.update(multihead_attention_fields(mConfig));
  } catch (std::exception const& e) {
    logException(logName(), "getFieldsToSerialize", e);
  }
  return nullptr;
}

}  // namespace fusionrt::trt
