// Shapes in op contracts: sizes that may be unknown until runtime, and an op's output shape as a
// declarative rule over its input dims, which every front end evaluates on its own kind of size:
// int64 here (kUnknownDim for a size not known yet), TensorRT's IDimensionExpr in the plugins
// (tensorrt/common/PluginAdapters.h), torch SymInts in the fake implementations
// (python/fusionrt/ops.py, from fusionrt._C.op_contracts()).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fusionrt {

// A size TensorRT does not know yet (dynamic at build time), as in nvinfer1::Dims.
inline constexpr int64_t kUnknownDim = -1;

// "(2, 3)", "(4,)": a shape as Python prints it; "?" for kUnknownDim.
std::string shape_str(const std::vector<int64_t>& shape);

// Folds `size` into `agreed` (kUnknownDim until some input knows it); throws std::invalid_argument
// "<what> is <size>, expected <agreed> (<expected_from>)" when two known sizes differ.
void agree(int64_t& agreed, int64_t size, const std::string& what, const std::string& expected_from);

// OutputDim::count for "every data input from first_input on": the variadic inputs of an op such as
// concat + LayerNorm, whose number a call (or a plugin's num_inputs field) decides.
inline constexpr int32_t kThroughLastDataInput = -1;

// One output dim: the sum of dim `input_dim` over the data inputs [first_input, first_input + count).
// A count of 1 copies one input's dim. Data inputs are an op's tensors in call order (q, k, v; or
// inputs[0..n)), before any optional parameters such as weight, bias or a mask.
struct OutputDim {
  int32_t input_dim;
  int32_t first_input = 0;
  int32_t count = 1;
};

// Evaluates `rule` on any kind of size: `dim_of(input, axis)` gives one, `add(a, b)` sums two.
// `nb_data_inputs` resolves kThroughLastDataInput.
template <typename DimOf, typename Add>
auto evaluate_output_dim(const OutputDim& rule, int32_t nb_data_inputs, DimOf dim_of, Add add) {
  const int32_t last = rule.count == kThroughLastDataInput ? nb_data_inputs : rule.first_input + rule.count;
  auto total = dim_of(rule.first_input, rule.input_dim);
  for (int32_t input = rule.first_input + 1; input < last; ++input) total = add(total, dim_of(input, rule.input_dim));
  return total;
}

// The int64 sizes `rule` gives, `dim_of(input, axis)` reading the data inputs' sizes; kUnknownDim
// where a summed size is unknown.
template <size_t N, typename DimOf>
std::vector<int64_t> evaluate_output_shape(const std::array<OutputDim, N>& rule, int32_t nb_data_inputs,
                                           DimOf dim_of) {
  std::vector<int64_t> sizes;
  sizes.reserve(N);
  for (const OutputDim& dim : rule) {
    sizes.push_back(evaluate_output_dim(dim, nb_data_inputs, dim_of, [](int64_t a, int64_t b) {
      return a == kUnknownDim || b == kUnknownDim ? kUnknownDim : a + b;
    }));
  }
  return sizes;
}

// The same over the data inputs' `shapes` (each long enough for the dims the rule reads).
template <size_t N>
std::vector<int64_t> evaluate_output_shape(const std::array<OutputDim, N>& rule,
                                           const std::vector<std::vector<int64_t>>& shapes, int32_t nb_data_inputs) {
  return evaluate_output_shape(rule, nb_data_inputs,
                               [&](int32_t input, int32_t axis) { return shapes.at(input).at(axis); });
}

}  // namespace fusionrt
