#include "tensorrt/concat_layernorm/ConcatLayerNormFields.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "common/plugin_specs.h"
#include "kernels/concat_layernorm.h"

namespace fusionrt::trt {
namespace {

using Spec = specs::ConcatLayerNorm;
using Limits = ConcatLayerNormParams;

std::string quoted(const char* name) { return std::string("'") + name + "'"; }

// Fields are copied out with memcpy: TensorRT gives no alignment guarantee for `data`.
template <typename T>
T read_scalar(const RawField& field, FieldType expected) {
  if (field.type != expected) {
    throw std::invalid_argument("field " + quoted(field.name) + " has type " + field_type_name(field.type) +
                                ", expected " + field_type_name(expected));
  }
  if (field.length != 1) {
    throw std::invalid_argument("field " + quoted(field.name) + " has " + std::to_string(field.length) +
                                " values, expected 1");
  }
  if (field.data == nullptr) throw std::invalid_argument("field " + quoted(field.name) + " has no data");
  T value;
  std::memcpy(&value, field.data, sizeof value);
  return value;
}

int32_t read_flag(const RawField& field, FieldType type) {
  const auto value = read_scalar<int32_t>(field, type);
  if (value != 0 && value != 1) {
    throw std::invalid_argument("field " + quoted(field.name) + " is " + std::to_string(value) + ", expected 0 or 1");
  }
  return value;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    text += (i ? ", " : "") + (shape[i] == kUnknownDim ? std::string("?") : std::to_string(shape[i]));
  }
  return text + (shape.size() == 1 ? ",)" : ")");
}

// Folds `size` into `agreed` (kUnknownDim until some input knows it); throws when two known sizes differ.
void agree(int64_t& agreed, int64_t size, const std::string& what, const std::string& expected_from) {
  if (size == kUnknownDim) return;
  if (agreed != kUnknownDim && agreed != size) {
    throw std::invalid_argument(what + " is " + std::to_string(size) + ", expected " + std::to_string(agreed) + " (" +
                                expected_from + ")");
  }
  agreed = size;
}

}  // namespace

const char* field_type_name(FieldType type) {
  switch (type) {
    case FieldType::kFloat16: return "float16";
    case FieldType::kFloat32: return "float32";
    case FieldType::kFloat64: return "float64";
    case FieldType::kInt8: return "int8";
    case FieldType::kInt16: return "int16";
    case FieldType::kInt32: return "int32";
    case FieldType::kChar: return "char";
    case FieldType::kDims: return "dims";
    case FieldType::kUnknown: return "unknown";
    case FieldType::kBFloat16: return "bfloat16";
    case FieldType::kInt64: return "int64";
    case FieldType::kFloat8: return "float8";
    case FieldType::kInt4: return "int4";
  }
  return "unsupported";
}

const std::array<FieldSpec, 4>& concat_layernorm_field_specs() {
  static const std::array<FieldSpec, 4> specs{{{Spec::kFieldEps, FieldType::kFloat32},
                                               {Spec::kFieldNumInputs, FieldType::kInt32},
                                               {Spec::kFieldHasWeight, FieldType::kInt32},
                                               {Spec::kFieldHasBias, FieldType::kInt32}}};
  return specs;
}

ConcatLayerNormConfig parse_concat_layernorm_fields(const RawField* fields, int32_t count) {
  if (count < 0 || (count > 0 && fields == nullptr)) {
    throw std::invalid_argument("invalid field collection: " + std::to_string(count) + " fields");
  }
  const auto& expected = concat_layernorm_field_specs();
  ConcatLayerNormConfig config;
  std::array<bool, 4> seen{};
  for (int32_t i = 0; i < count; ++i) {
    const RawField& field = fields[i];
    if (field.name == nullptr) throw std::invalid_argument("field " + std::to_string(i) + " has no name");
    size_t which = 0;
    while (which < expected.size() && std::strcmp(field.name, expected[which].name) != 0) ++which;
    if (which == expected.size()) {
      std::string known;
      for (const FieldSpec& spec : expected) known += (known.empty() ? "" : ", ") + quoted(spec.name);
      throw std::invalid_argument("unknown field " + quoted(field.name) + " for " + Spec::kName + ", expected " + known);
    }
    if (seen[which]) throw std::invalid_argument("field " + quoted(field.name) + " is given twice");
    seen[which] = true;
    const FieldType type = expected[which].type;
    // Same order as concat_layernorm_field_specs().
    switch (which) {
      case 0: config.eps = read_scalar<float>(field, type); break;
      case 1: config.num_inputs = read_scalar<int32_t>(field, type); break;
      case 2: config.has_weight = read_flag(field, type); break;
      case 3: config.has_bias = read_flag(field, type); break;
    }
  }
  for (size_t which = 0; which < expected.size(); ++which) {
    if (!seen[which]) {
      throw std::invalid_argument("missing field " + quoted(expected[which].name) + " for " + Spec::kName);
    }
  }
  if (!(config.eps > 0.0f) || !std::isfinite(config.eps)) {
    throw std::invalid_argument(std::string("field ") + quoted(Spec::kFieldEps) + " is " + std::to_string(config.eps) +
                                ", expected a finite value > 0");
  }
  if (config.num_inputs < Limits::kMinInputs || config.num_inputs > Limits::kMaxInputs) {
    throw std::invalid_argument(std::string("field ") + quoted(Spec::kFieldNumInputs) + " is " +
                                std::to_string(config.num_inputs) + ", expected " +
                                std::to_string(Limits::kMinInputs) + " to " + std::to_string(Limits::kMaxInputs));
  }
  return config;
}

std::array<RawField, 4> concat_layernorm_fields(const ConcatLayerNormConfig& config) {
  const auto& specs = concat_layernorm_field_specs();
  // Same order as concat_layernorm_field_specs().
  const void* const values[] = {&config.eps, &config.num_inputs, &config.has_weight, &config.has_bias};
  std::array<RawField, 4> fields;
  for (size_t i = 0; i < fields.size(); ++i) fields[i] = RawField{specs[i].name, specs[i].type, values[i], 1};
  return fields;
}

std::array<int64_t, 2> concat_layernorm_output_shape(const ConcatLayerNormConfig& config,
                                                     const std::vector<std::vector<int64_t>>& input_shapes) {
  const auto count = static_cast<int32_t>(input_shapes.size());
  if (count != config.nb_node_inputs()) {
    throw std::invalid_argument("expected " + std::to_string(config.nb_node_inputs()) + " inputs (" +
                                std::to_string(config.num_inputs) + " tensors" +
                                (config.has_weight ? ", weight" : "") + (config.has_bias ? ", bias" : "") +
                                "), got " + std::to_string(count));
  }
  int64_t batch = kUnknownDim;
  int64_t width = 0;  // kUnknownDim once any input width is unknown
  for (int32_t i = 0; i < config.num_inputs; ++i) {
    const std::vector<int64_t>& shape = input_shapes[i];
    const std::string name = "inputs[" + std::to_string(i) + "]";
    if (shape.size() != 2) {
      throw std::invalid_argument(name + " has shape " + shape_string(shape) + ", expected 2 dims (batch, features)");
    }
    agree(batch, shape[0], name + " batch", "the batch of the inputs before it");
    if (shape[1] != kUnknownDim && shape[1] <= 0) {
      throw std::invalid_argument(name + " has " + std::to_string(shape[1]) + " features, expected > 0");
    }
    width = (width == kUnknownDim || shape[1] == kUnknownDim) ? kUnknownDim : width + shape[1];
  }
  for (const auto& [index, name] : {std::pair{config.weight_index(), "weight"}, std::pair{config.bias_index(), "bias"}}) {
    if (index < 0) continue;
    const std::vector<int64_t>& shape = input_shapes[index];
    if (shape.size() != 1) {
      throw std::invalid_argument(std::string(name) + " has shape " + shape_string(shape) +
                                  ", expected 1 dim (total features,)");
    }
    int64_t expected = width;
    agree(expected, shape[0], std::string(name) + " length", "the total features of the inputs");
  }
  return {batch, width};
}

}  // namespace fusionrt::trt
