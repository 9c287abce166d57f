#include "tensorrt/attention/MultiheadAttentionFields.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "common/plugin_specs.h"
#include "kernels/attention.h"

namespace fusionrt::trt {
namespace {

using Spec = specs::MultiheadAttention;
using Config = MultiheadAttentionConfig;

constexpr const char* kInputNames[] = {"q", "k", "v", "key_padding_mask"};

void expect_rank(const std::vector<int64_t>& shape, size_t rank, const char* name, const char* layout) {
  if (shape.size() != rank) {
    throw std::invalid_argument(std::string(name) + " has shape " + shape_string(shape) + ", expected " +
                                std::to_string(rank) + " dims " + layout);
  }
}

}  // namespace

const std::array<FieldSpec, 2>& multihead_attention_field_specs() {
  static const std::array<FieldSpec, 2> specs{{{Spec::kFieldScale, FieldType::kFloat32},
                                               {Spec::kFieldHasMask, FieldType::kInt32}}};
  return specs;
}

MultiheadAttentionConfig parse_multihead_attention_fields(const RawField* fields, int32_t count) {
  const auto& specs = multihead_attention_field_specs();
  const std::vector<const RawField*> found = match_fields(fields, count, specs.data(), specs.size(), Spec::kName);
  // Same order as multihead_attention_field_specs().
  Config config;
  config.scale = read_scalar<float>(*found[0], specs[0].type);
  config.has_mask = read_flag(*found[1], specs[1].type);
  if (!std::isfinite(config.scale)) {
    throw std::invalid_argument(std::string("field ") + quoted(Spec::kFieldScale) + " is " +
                                std::to_string(config.scale) + ", expected a finite value");
  }
  return config;
}

std::array<RawField, 2> multihead_attention_fields(const MultiheadAttentionConfig& config) {
  // Same order as multihead_attention_field_specs().
  return raw_fields(multihead_attention_field_specs(), {&config.scale, &config.has_mask});
}

std::array<int64_t, 4> multihead_attention_output_shape(const MultiheadAttentionConfig& config,
                                                        const std::vector<std::vector<int64_t>>& input_shapes) {
  const auto count = static_cast<int32_t>(input_shapes.size());
  if (count != config.nb_node_inputs()) {
    throw std::invalid_argument("expected " + std::to_string(config.nb_node_inputs()) + " inputs (q, k, v" +
                                (config.has_mask ? ", key_padding_mask" : "") + "), got " + std::to_string(count));
  }
  int64_t batch = kUnknownDim, heads = kUnknownDim, head_dim = kUnknownDim, keys = kUnknownDim;
  for (int32_t i : {Config::kQ, Config::kK, Config::kV}) {
    const std::vector<int64_t>& shape = input_shapes[i];
    const std::string name = kInputNames[i];
    expect_rank(shape, 4, kInputNames[i], i == Config::kQ ? "(batch, heads, Lq, head_dim)" : "(batch, heads, Lk, head_dim)");
    agree(batch, shape[0], name + " batch", "the batch of the inputs before it");
    agree(heads, shape[1], name + " heads", "the heads of the inputs before it");
    agree(head_dim, shape[3], name + " head_dim", "the head_dim of the inputs before it");
    if (i == Config::kV) agree(keys, shape[2], "v length", "the length of k");
    if (i == Config::kK) keys = shape[2];
  }
  if (head_dim != kUnknownDim && (head_dim < 1 || head_dim > AttentionParams::kMaxHeadDim)) {
    throw std::invalid_argument("head_dim is " + std::to_string(head_dim) + ", expected 1 to " +
                                std::to_string(AttentionParams::kMaxHeadDim));
  }
  if (config.has_mask) {
    const std::vector<int64_t>& shape = input_shapes[Config::kMask];
    expect_rank(shape, 2, kInputNames[Config::kMask], "(batch, Lk)");
    agree(batch, shape[0], "key_padding_mask batch", "the batch of q, k and v");
    agree(keys, shape[1], "key_padding_mask keys", "the length of k and v");
  }
  return {batch, heads, input_shapes[Config::kQ][2], head_dim};
}

}  // namespace fusionrt::trt
