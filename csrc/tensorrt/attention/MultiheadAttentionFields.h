// Fields and shape rules of the FusionrtMultiheadAttention plugin, free of TensorRT types so that the
// rules the plugin enforces are compiled into fusionrt._C and unit-tested on machines without
// TensorRT (common/PluginFields.h).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "tensorrt/common/PluginFields.h"

namespace fusionrt::trt {

// The fields the creator declares (getFieldNames) and the parser expects, in serialisation order.
const std::array<FieldSpec, 2>& multihead_attention_field_specs();

// The plugin's attributes, held exactly as they are serialised, so that getFieldsToSerialize can
// point at them. The exporter writes the resolved scale (1 / sqrt(head_dim) when the op was given
// none), so the plugin takes it as it comes.
struct MultiheadAttentionConfig {
  static constexpr int32_t kQ = 0, kK = 1, kV = 2, kMask = 3;

  float scale = 0.0f;
  int32_t has_mask = 0;

  // Node inputs: q, k, v, then the (batch, Lk) bool key padding mask when has_mask.
  int32_t nb_node_inputs() const { return 3 + has_mask; }
};

// Both fields of specs::MultiheadAttention exactly once, each a single value of its declared type
// and in range (scale finite, has_mask 0 or 1); throws std::invalid_argument naming the field, what
// was expected and what came.
MultiheadAttentionConfig parse_multihead_attention_fields(const RawField* fields, int32_t count);

// The fields that serialise `config`, pointing into it (valid while `config` lives); what
// parse_multihead_attention_fields reads back.
std::array<RawField, 2> multihead_attention_fields(const MultiheadAttentionConfig& config);

// Checks the node input shapes against `config`: q (batch, heads, Lq, head_dim), k and v (batch,
// heads, Lk, head_dim) with head_dim <= AttentionParams::kMaxHeadDim, mask (batch, Lk); kUnknownDim
// where a size is not known yet. Returns the output shape, q's, with each size any input knows.
// Throws std::invalid_argument on a mismatch.
std::array<int64_t, 4> multihead_attention_output_shape(const MultiheadAttentionConfig& config,
                                                        const std::vector<std::vector<int64_t>>& input_shapes);

}  // namespace fusionrt::trt
