// The contract of fused concat + LayerNorm: the one place its rules are written. The call class
// (concat_layernorm_op.h), the TensorRT plugin (tensorrt/concat_layernorm/), and through fusionrt._C
// the torch op (python/fusionrt/ops.py) and its ONNX lowering (python/fusionrt/onnx_ops.py) all
// take their limits, shapes, dtypes and attributes from here.
//
// Node: data inputs x_0 .. x_{n-1} shaped (batch, d_i), 2 <= n <= 4, one float dtype; then weight if
// has_weight, then bias if has_bias, each (sum d_i,). One output (batch, sum d_i).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/concat_layernorm.h"
#include "op_fields.h"
#include "shape_rule.h"

namespace fusionrt {

struct ConcatLayerNormContract {
  // The TensorRT plugin's (and ONNX custom op's) identity.
  static constexpr char kName[] = "FusionrtConcatLayerNorm";
  static constexpr char kVersion[] = "1";

  // Attributes, as plugin fields in serialisation order.
  static constexpr char kFieldEps[] = "eps";               // float32, finite and > 0
  static constexpr char kFieldNumInputs[] = "num_inputs";  // int32, kMinInputs..kMaxInputs
  static constexpr char kFieldHasWeight[] = "has_weight";  // int32, 0 or 1
  static constexpr char kFieldHasBias[] = "has_bias";      // int32, 0 or 1
  static constexpr std::array<FieldSpec, 4> kFields{{{kFieldEps, FieldType::kFloat32},
                                                     {kFieldNumInputs, FieldType::kInt32},
                                                     {kFieldHasWeight, FieldType::kInt32},
                                                     {kFieldHasBias, FieldType::kInt32}}};

  // Data inputs: as many as the kernel's parameter block holds.
  static constexpr int32_t kMinInputs = ConcatLayerNormParams::kMinInputs;
  static constexpr int32_t kMaxInputs = ConcatLayerNormParams::kMaxInputs;
  static constexpr std::array<DType, 4> kDTypes = kKernelDTypes;

  // eps is added to the variance: it must keep 1 / sqrt(var + eps) finite and not flatten every
  // output to zero, so it is finite and > 0 (inf would silently answer zeros).
  static bool valid_eps(double eps) { return eps > 0.0 && std::isfinite(eps); }

  // (batch, sum d_i): the batch of x_0, and the features of every data input added up.
  static constexpr std::array<OutputDim, 2> kOutputShape{{{0, 0, 1}, {1, 0, kThroughLastDataInput}}};
};

// The attributes of one node, held exactly as they are serialised (int32 flags included), so that
// the plugin's getFieldsToSerialize can point at them.
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

// Every field of ConcatLayerNormContract::kFields exactly once, each a single value of its declared
// type and in range; throws std::invalid_argument naming the field, what was expected and what came.
ConcatLayerNormConfig parse_concat_layernorm_fields(const RawField* fields, int32_t count);

// The fields that serialise `config`, pointing into it (valid while `config` lives); what
// parse_concat_layernorm_fields reads back.
std::array<RawField, 4> concat_layernorm_fields(const ConcatLayerNormConfig& config);

// Checks the node input shapes against `config` (inputs (batch, d_i), weight and bias (sum d_i,);
// kUnknownDim where a size is not known yet) and returns the output shape (batch, sum d_i), with
// kUnknownDim where it depends on an unknown size. Throws std::invalid_argument on a mismatch.
std::vector<int64_t> concat_layernorm_output_shape(const ConcatLayerNormConfig& config,
                                                   const std::vector<std::vector<int64_t>>& input_shapes);

}  // namespace fusionrt
