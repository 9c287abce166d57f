#include "attention_contract.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace fusionrt {
namespace {

using Contract = MultiheadAttentionContract;
using Config = MultiheadAttentionConfig;

constexpr const char* kInputNames[] = {"q", "k", "v", "key_padding_mask"};

void expect_rank(const std::vector<int64_t>& shape, size_t rank, const char* name, const char* layout) {
  if (shape.size() != rank) {
    throw std::invalid_argument(std::string(name) + " has shape " + shape_str(shape) + ", expected " +
                                std::to_string(rank) + " dims " + layout);
  }
}

}  // namespace

MultiheadAttentionConfig parse_multihead_attention_fields(const RawField* fields, int32_t count) {
  const std::vector<const RawField*> found = match_contract_fields<Contract>(fields, count);
  const auto& specs = Contract::kFields;  // found[i] is specs[i]'s
  Config config;
  config.scale = read_scalar<float>(*found[0], specs[0].type);
  config.has_mask = read_flag(*found[1], specs[1].type);
  if (!std::isfinite(config.scale)) {
    throw std::invalid_argument(std::string("field ") + quoted(Contract::kFieldScale) + " is " +
                                std::to_string(config.scale) + ", expected a finite value");
  }
  return config;
}

std::array<RawField, 2> multihead_attention_fields(const MultiheadAttentionConfig& config) {
  // Same order as kFields.
  return raw_fields(Contract::kFields, {&config.scale, &config.has_mask});
}

std::vector<int64_t> multihead_attention_output_shape(const MultiheadAttentionConfig& config,
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
  if (head_dim != kUnknownDim && (head_dim < 1 || head_dim > Contract::kMaxHeadDim)) {
    throw std::invalid_argument("head_dim is " + std::to_string(head_dim) + ", expected 1 to " +
                                std::to_string(Contract::kMaxHeadDim));
  }
  if (config.has_mask) {
    const std::vector<int64_t>& shape = input_shapes[Config::kMask];
    expect_rank(shape, 2, kInputNames[Config::kMask], "(batch, Lk)");
    agree(batch, shape[0], "key_padding_mask batch", "the batch of q, k and v");
    agree(keys, shape[1], "key_padding_mask keys", "the length of k and v");
  }
  // The rule copies q's dims; at build time another input may know a size q does not yet.
  std::vector<int64_t> output = evaluate_output_shape(Contract::kOutputShape, input_shapes, Config::kNbDataInputs);
  output[0] = batch;
  output[1] = heads;
  output[3] = head_dim;
  return output;
}

}  // namespace fusionrt
