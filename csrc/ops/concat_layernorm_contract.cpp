#include "concat_layernorm_contract.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace fusionrt {
namespace {

using Contract = ConcatLayerNormContract;

}  // namespace

ConcatLayerNormConfig parse_concat_layernorm_fields(const RawField* fields, int32_t count) {
  const std::vector<const RawField*> found = match_contract_fields<Contract>(fields, count);
  const auto& specs = Contract::kFields;  // found[i] is specs[i]'s
  ConcatLayerNormConfig config;
  config.eps = read_scalar<float>(*found[0], specs[0].type);
  config.num_inputs = read_scalar<int32_t>(*found[1], specs[1].type);
  config.has_weight = read_flag(*found[2], specs[2].type);
  config.has_bias = read_flag(*found[3], specs[3].type);
  if (!Contract::valid_eps(config.eps)) {
    throw std::invalid_argument(std::string("field ") + quoted(Contract::kFieldEps) + " is " +
                                std::to_string(config.eps) + ", expected a finite value > 0");
  }
  if (config.num_inputs < Contract::kMinInputs || config.num_inputs > Contract::kMaxInputs) {
    throw std::invalid_argument(std::string("field ") + quoted(Contract::kFieldNumInputs) + " is " +
                                std::to_string(config.num_inputs) + ", expected " +
                                std::to_string(Contract::kMinInputs) + " to " + std::to_string(Contract::kMaxInputs));
  }
  return config;
}

std::array<RawField, 4> concat_layernorm_fields(const ConcatLayerNormConfig& config) {
  // Same order as kFields.
  return raw_fields(Contract::kFields, {&config.eps, &config.num_inputs, &config.has_weight, &config.has_bias});
}

std::vector<int64_t> concat_layernorm_output_shape(const ConcatLayerNormConfig& config,
                                                   const std::vector<std::vector<int64_t>>& input_shapes) {
  const auto count = static_cast<int32_t>(input_shapes.size());
  if (count != config.nb_node_inputs()) {
    throw std::invalid_argument("expected " + std::to_string(config.nb_node_inputs()) + " inputs (" +
                                std::to_string(config.num_inputs) + " tensors" +
                                (config.has_weight ? ", weight" : "") + (config.has_bias ? ", bias" : "") +
                                "), got " + std::to_string(count));
  }
  int64_t batch = kUnknownDim;
  for (int32_t i = 0; i < config.num_inputs; ++i) {
    const std::vector<int64_t>& shape = input_shapes[i];
    const std::string name = "inputs[" + std::to_string(i) + "]";
    if (shape.size() != 2) {
      throw std::invalid_argument(name + " has shape " + shape_str(shape) + ", expected 2 dims (batch, features)");
    }
    agree(batch, shape[0], name + " batch", "the batch of the inputs before it");
    if (shape[1] != kUnknownDim && shape[1] <= 0) {
      throw std::invalid_argument(name + " has " + std::to_string(shape[1]) + " features, expected > 0");
    }
  }
  std::vector<int64_t> output = evaluate_output_shape(Contract::kOutputShape, input_shapes, config.num_inputs);
  output[0] = batch;  // whichever input knows it
  for (const auto& [index, name] : {std::pair{config.weight_index(), "weight"}, std::pair{config.bias_index(), "bias"}}) {
    if (index < 0) continue;
    const std::vector<int64_t>& shape = input_shapes[index];
    if (shape.size() != 1) {
      throw std::invalid_argument(std::string(name) + " has shape " + shape_str(shape) +
                                  ", expected 1 dim (total features,)");
    }
    int64_t expected = output[1];
    agree(expected, shape[0], std::string(name) + " length", "the total features of the inputs");
  }
  return output;
}

}  // namespace fusionrt
