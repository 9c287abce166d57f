// Fields and shape rules of the FusionrtConcatLayerNorm plugin, free of TensorRT types so that the
// rules the plugin enforces are compiled into fusionrt._C and unit-tested on machines without
// TensorRT. The plugin converts nvinfer1::PluginField / Dims into these types and back.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace fusionrt::trt {

// Same numbering as nvinfer1::PluginFieldType (ConcatLayerNormPlugin.cpp asserts it), so a plugin
// field's type converts with a cast. Only float32 and int32 are accepted; the others name what came.
enum class FieldType : int32_t {
  kFloat16 = 0,
  kFloat32 = 1,
  kFloat64 = 2,
  kInt8 = 3,
  kInt16 = 4,
  kInt32 = 5,
  kChar = 6,
  kDims = 7,
  kUnknown = 8,
  kBFloat16 = 9,
  kInt64 = 10,
  kFloat8 = 11,
  kInt4 = 12,
};

const char* field_type_name(FieldType type);

// One plugin field as TensorRT hands it over: `length` elements of `type` at `data`.
struct RawField {
  const char* name;
  FieldType type;
  const void* data;
  int32_t length;
};

// The fields the creator declares (getFieldNames) and the parser expects, in serialisation order.
struct FieldSpec {
  const char* name;
  FieldType type;
};
const std::array<FieldSpec, 4>& concat_layernorm_field_specs();

// The plugin's attributes, held exactly as they are serialised (int32 flags included), so that
// getFieldsToSerialize can point at them.
struct ConcatLayerNormConfig {
  float eps = 0.0f;
  int32_t num_inputs = 0;
  int32_t has_weight = 0;
  int32_t has_bias = 0;

  // Node inputs: x_0 .. x_{num_inputs-1}, then weight, then bias when present.
  int32_t nb_node_inputs() const { return num_inputs + has_weight + has_bias; }
  int32_t weight_index() const { return has_weight ? num_inputs : -1; }
  int32_t bias_index() const { return has_bias ? num_inputs + has_weight : -1; }
};

// Every field of specs::ConcatLayerNorm exactly once, each a single value of its declared type and
// in range; throws std::invalid_argument naming the field, what was expected and what came.
ConcatLayerNormConfig parse_concat_layernorm_fields(const RawField* fields, int32_t count);

// The fields that serialise `config`, pointing into it (valid while `config` lives); what
// parse_concat_layernorm_fields reads back.
std::array<RawField, 4> concat_layernorm_fields(const ConcatLayerNormConfig& config);

// A dimension TensorRT does not know yet (dynamic at build time), as in nvinfer1::Dims.
inline constexpr int64_t kUnknownDim = -1;

// Checks the node input shapes against `config` (inputs (batch, d_i), weight and bias (sum d_i,);
// kUnknownDim where a size is not known yet) and returns the output shape (batch, sum d_i), with
// kUnknownDim where it depends on an unknown size. Throws std::invalid_argument on a mismatch.
std::array<int64_t, 2> concat_layernorm_output_shape(const ConcatLayerNormConfig& config,
                                                     const std::vector<std::vector<int64_t>>& input_shapes);

}  // namespace fusionrt::trt
