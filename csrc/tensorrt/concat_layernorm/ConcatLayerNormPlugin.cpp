#include "tensorrt/concat_layernorm/ConcatLayerNormPlugin.h"

#include <algorithm>
#include <optional>
#include <stdexcept>

#include "common/plugin_specs.h"
#include "kernels/concat_layernorm.h"
#include "tensorrt/logging.h"

namespace fusionrt::trt {
namespace {

using nvinfer1::DataType;
using nvinfer1::PluginFieldType;
using Spec = specs::ConcatLayerNorm;

constexpr bool sameCode(FieldType ours, PluginFieldType theirs) {
  return static_cast<int32_t>(ours) == static_cast<int32_t>(theirs);
}
// Fields convert between FieldType and PluginFieldType with a cast (ConcatLayerNormFields.h).
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

nvinfer1::PluginField toPluginField(RawField const& field) {
  return nvinfer1::PluginField{field.name, field.data, static_cast<PluginFieldType>(field.type), field.length};
}

RawField toRawField(nvinfer1::PluginField const& field) {
  return RawField{field.name, static_cast<FieldType>(field.type), field.data, field.length};
}

// The TensorRT types the kernel computes in; none for the rest.
std::optional<DType> kernelType(DataType type) {
  switch (type) {
    case DataType::kFLOAT: return DType::kFloat32;
    case DataType::kHALF: return DType::kFloat16;
    case DataType::kBF16: return DType::kBFloat16;
    default: return std::nullopt;
  }
}

std::string typeName(DataType type) {
  const std::optional<DType> kernel = kernelType(type);
  return kernel ? dtype_name(*kernel) : "nvinfer1::DataType " + std::to_string(static_cast<int32_t>(type));
}

// Shapes for the TRT-free rules in ConcatLayerNormFields.h, with kUnknownDim where TensorRT does not
// know a size yet (Dims already say -1 there; an expression is known only when it is a constant).
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
std::vector<int64_t> sizesOf(nvinfer1::PluginTensorDesc const& desc) { return sizesOf(desc.dims); }
std::vector<int64_t> sizesOf(nvinfer1::DynamicPluginTensorDesc const& desc) { return sizesOf(desc.desc.dims); }

template <typename Tensor>
std::vector<std::vector<int64_t>> shapesOf(Tensor const* tensors, int32_t count) {
  if (count < 0 || (count > 0 && tensors == nullptr)) {
    throw std::invalid_argument("invalid tensor list of " + std::to_string(count));
  }
  std::vector<std::vector<int64_t>> shapes;
  for (int32_t i = 0; i < count; ++i) shapes.push_back(sizesOf(tensors[i]));
  return shapes;
}

void expectOneOutput(int32_t nbOutputs) {
  if (nbOutputs != 1) throw std::invalid_argument("expected 1 output, got " + std::to_string(nbOutputs));
}

}  // namespace

// --- ConcatLayerNormPlugin -------------------------------------------------------------------------

ConcatLayerNormPlugin::ConcatLayerNormPlugin(std::string const& layerName, ConcatLayerNormConfig const& config)
    : mLogName(std::string(Spec::kName) + " '" + layerName + "'"), mConfig(config) {}

nvinfer1::IPluginCapability* ConcatLayerNormPlugin::getCapabilityInterface(
    nvinfer1::PluginCapabilityType type) noexcept {
  switch (type) {
    case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
  }
  return nullptr;
}

nvinfer1::IPluginV3* ConcatLayerNormPlugin::clone() noexcept {
  try {
    return new ConcatLayerNormPlugin(*this);
  } catch (std::exception const& e) {
    logException(mLogName.c_str(), "clone", e);
  }
  return nullptr;
}

char const* ConcatLayerNormPlugin::getPluginName() const noexcept { return Spec::kName; }
char const* ConcatLayerNormPlugin::getPluginVersion() const noexcept { return Spec::kVersion; }
char const* ConcatLayerNormPlugin::getPluginNamespace() const noexcept { return specs::kPluginNamespace; }

int32_t ConcatLayerNormPlugin::getNbOutputs() const noexcept { return 1; }

int32_t ConcatLayerNormPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs,
                                                  DataType const* inputTypes, int32_t nbInputs) const noexcept {
  try {
    expectOneOutput(nbOutputs);
    if (nbInputs != mConfig.nb_node_inputs()) {
      throw std::invalid_argument("expected " + std::to_string(mConfig.nb_node_inputs()) + " inputs, got " +
                                  std::to_string(nbInputs));
    }
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
    logException(mLogName.c_str(), "getOutputDataTypes", e);
  }
  return -1;
}

int32_t ConcatLayerNormPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
                                               nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
                                               nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                                               nvinfer1::IExprBuilder& exprBuilder) noexcept {
  try {
    expectOneOutput(nbOutputs);
    // Sizes known at build time are checked now; the rest in onShapeChange.
    concat_layernorm_output_shape(mConfig, shapesOf(inputs, nbInputs));
    nvinfer1::IDimensionExpr const* width = inputs[0].d[1];
    for (int32_t i = 1; i < mConfig.num_inputs; ++i) {
      width = exprBuilder.operation(nvinfer1::DimensionOperation::kSUM, *width, *inputs[i].d[1]);
    }
    outputs[0].nbDims = 2;
    outputs[0].d[0] = inputs[0].d[0];
    outputs[0].d[1] = width;
    return 0;
  } catch (std::exception const& e) {
    logException(mLogName.c_str(), "getOutputShapes", e);
  }
  return -1;
}

bool ConcatLayerNormPlugin::supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut,
                                                      int32_t nbInputs, int32_t nbOutputs) noexcept {
  try {
    if (pos < 0 || pos >= nbInputs + nbOutputs) {
      throw std::out_of_range("position " + std::to_string(pos) + " of " + std::to_string(nbInputs + nbOutputs));
    }
    nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
    // The kernel reads rows of contiguous features, and weight and bias in the inputs' type.
    return desc.format == nvinfer1::TensorFormat::kLINEAR && kernelType(desc.type) &&
           (pos == 0 || desc.type == inOut[0].desc.type);
  } catch (std::exception const& e) {
    logException(mLogName.c_str(), "supportsFormatCombination", e);
  }
  return false;
}

int32_t ConcatLayerNormPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                               nvinfer1::DynamicPluginTensorDesc const* /*out*/,
                                               int32_t nbOutputs) noexcept {
  try {
    expectOneOutput(nbOutputs);
    concat_layernorm_output_shape(mConfig, shapesOf(in, nbInputs));
    return 0;
  } catch (std::exception const& e) {
    logException(mLogName.c_str(), "configurePlugin", e);
  }
  return -1;
}

size_t ConcatLayerNormPlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* /*inputs*/,
                                               int32_t /*nbInputs*/,
                                               nvinfer1::DynamicPluginTensorDesc const* /*outputs*/,
                                               int32_t /*nbOutputs*/) const noexcept {
  return 0;  // one pass over registers and shared memory: no scratch
}

int32_t ConcatLayerNormPlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
                                             nvinfer1::PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept {
  try {
    // Runtime shapes are all known: the last chance to reject, e.g., differing batches before enqueue.
    expectOneOutput(nbOutputs);
    concat_layernorm_output_shape(mConfig, shapesOf(in, nbInputs));
    return 0;
  } catch (std::exception const& e) {
    logException(mLogName.c_str(), "onShapeChange", e);
  }
  return -1;
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
    logException(mLogName.c_str(), "enqueue", e);
  }
  return -1;
}

nvinfer1::IPluginV3* ConcatLayerNormPlugin::attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept {
  // No per-context resources: each execution context gets its own copy.
  return clone();
}

nvinfer1::PluginFieldCollection const* ConcatLayerNormPlugin::getFieldsToSerialize() noexcept {
  try {
    const std::array<RawField, 4> fields = concat_layernorm_fields(mConfig);
    for (size_t i = 0; i < fields.size(); ++i) mSerialFields[i] = toPluginField(fields[i]);
    mSerialCollection.nbFields = static_cast<int32_t>(mSerialFields.size());
    mSerialCollection.fields = mSerialFields.data();
    return &mSerialCollection;
  } catch (std::exception const& e) {
    logException(mLogName.c_str(), "getFieldsToSerialize", e);
  }
  return nullptr;
}

// --- ConcatLayerNormPluginCreator ------------------------------------------------------------------

ConcatLayerNormPluginCreator::ConcatLayerNormPluginCreator() {
  // Declared fields are what the ONNX parser collects from a node's attributes.
  for (FieldSpec const& spec : concat_layernorm_field_specs()) {
    mFieldNames.push_back(toPluginField(RawField{spec.name, spec.type, nullptr, 1}));
  }
  mFieldCollection.nbFields = static_cast<int32_t>(mFieldNames.size());
  mFieldCollection.fields = mFieldNames.data();
}

char const* ConcatLayerNormPluginCreator::getPluginName() const noexcept { return Spec::kName; }
char const* ConcatLayerNormPluginCreator::getPluginVersion() const noexcept { return Spec::kVersion; }
char const* ConcatLayerNormPluginCreator::getPluginNamespace() const noexcept { return specs::kPluginNamespace; }

nvinfer1::PluginFieldCollection const* ConcatLayerNormPluginCreator::getFieldNames() noexcept {
  return &mFieldCollection;
}

nvinfer1::IPluginV3* ConcatLayerNormPluginCreator::createPlugin(char const* name,
                                                                nvinfer1::PluginFieldCollection const* fc,
                                                                nvinfer1::TensorRTPhase /*phase*/) noexcept {
  try {
    // Build and runtime phases see the same fields: at runtime they are getFieldsToSerialize's.
    if (fc == nullptr || (fc->nbFields > 0 && fc->fields == nullptr)) {
      throw std::invalid_argument("no field collection");
    }
    std::vector<RawField> fields;
    for (int32_t i = 0; i < fc->nbFields; ++i) fields.push_back(toRawField(fc->fields[i]));
    return new ConcatLayerNormPlugin(name != nullptr ? name : "", parse_concat_layernorm_fields(
                                                                       fields.data(), fc->nbFields));
  } catch (std::exception const& e) {
    logException(Spec::kName, "createPlugin", e);
  }
  return nullptr;
}

}  // namespace fusionrt::trt
