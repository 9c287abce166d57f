// The contract of fused multi-head attention: the one place its rules are written. The call class
// (attention_op.h), the TensorRT plugin (tensorrt/attention/), and through fusionrt._C the torch op
// (python/fusionrt/ops.py) and its ONNX lowering (python/fusionrt/onnx_ops.py) all take their
// limits, shapes, dtypes and attributes from here.
//
// Node: data inputs q (batch, heads, Lq, head_dim), k and v (batch, heads, Lk, head_dim) of one float
// dtype, head_dim <= kMaxHeadDim; then the key padding mask (batch, Lk) bool, True = attend, if
// has_mask. One output shaped and typed like q; rows with no attended key are zeros.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "kernels/attention.h"
#include "op_fields.h"
#include "shape_rule.h"

namespace fusionrt {

struct MultiheadAttentionContract {
  // The TensorRT plugin's (and ONNX custom op's) identity.
  static constexpr char kName[] = "FusionrtMultiheadAttention";
  static constexpr char kVersion[] = "1";

  // Attributes, as plugin fields in serialisation order. The exporter writes the resolved scale
  // (1 / sqrt(head_dim) when the op was given none), so the plugin takes it as it comes.
  static constexpr char kFieldScale[] = "scale";      // float32, finite; multiplies q kᵀ
  static constexpr char kFieldHasMask[] = "has_mask";  // int32, 0 or 1
  static constexpr std::array<FieldSpec, 2> kFields{{{kFieldScale, FieldType::kFloat32},
                                                     {kFieldHasMask, FieldType::kInt32}}};

  // The kernel keeps a row of head_dim features per thread block in registers.
  static constexpr int64_t kMaxHeadDim = AttentionParams::kMaxHeadDim;
  static constexpr std::array<DType, 4> kDTypes = kKernelDTypes;  // q, k, v and the output

  // q's shape.
  static constexpr std::array<OutputDim, 4> kOutputShape{{{0}, {1}, {2}, {3}}};
};

// The attributes of one node, held exactly as they are serialised, so that the plugin's
// getFieldsToSerialize can point at them.
struct MultiheadAttentionConfig {
  static constexpr int32_t kQ = 0, kK = 1, kV = 2, kMask = 3;
  static constexpr int32_t kNbDataInputs = 3;  // q, k, v

  float scale = 0.0f;
  int32_t has_mask = 0;

  // Node inputs: q, k, v, then the (batch, Lk) bool key padding mask when has_mask.
  int32_t nb_node_inputs() const { return kNbDataInputs + has_mask; }
};

// Both fields of MultiheadAttentionContract::kFields exactly once, each a single value of its
// declared type and in range (scale finite, has_mask 0 or 1); throws std::invalid_argument naming the
// field, what was expected and what came.
MultiheadAttentionConfig parse_multihead_attention_fields(const RawField* fields, int32_t count);

// The fields that serialise `config`, pointing into it (valid while `config` lives); what
// parse_multihead_attention_fields reads back.
std::array<RawField, 2> multihead_attention_fields(const MultiheadAttentionConfig& config);

// Checks the node input shapes against `config`: q (batch, heads, Lq, head_dim), k and v (batch,
// heads, Lk, head_dim) with 1 <= head_dim <= kMaxHeadDim, mask (batch, Lk); kUnknownDim where a size
// is not known yet. Returns the output shape, q's, with each size any input knows. Throws
// std::invalid_argument on a mismatch.
std::vector<int64_t> multihead_attention_output_shape(const MultiheadAttentionConfig& config,
                                                      const std::vector<std::vector<int64_t>>& input_shapes);

}  // namespace fusionrt
