// Fields and shape rules of the FusionrtConcatLayerNorm plugin, free of TensorRT types so that the
// rules the plugin enforces are compiled into fusionrt._C and unit-tested on machines without
// TensorRT (common/PluginFields.h).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "tensorrt/common/PluginFields.h"

namespace fusionrt::trt {

// The fields the creator declares (getFieldNames) and the parser expects, in serialisation order.
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

// Checks the node input shapes against `config` (inputs (batch, d_i), weight and bias (sum d_i,);
// kUnknownDim where a size is not known yet) and returns the output shape (batch, sum d_i), with
// kUnknownDim where it depends on an unknown size. Throws std::invalid_argument on a mismatch.
std::array<int64_t, 2> concat_layernorm_output_shape(const ConcatLayerNormConfig& config,
                                                     const std::vector<std::vector<int64_t>>& input_shapes);

}  // namespace fusionrt::trt
