// Fused concat + LayerNorm as the front ends call it: check the arguments against the op's contract
// (concat_layernorm_contract.h), let the front end allocate the output it needs, then run the CPU or
// CUDA kernel on the inputs' device.
#pragma once

#include <cstdint>
#include <vector>

#include "concat_layernorm_contract.h"
#include "kernels/concat_layernorm.h"
#include "op_args.h"

namespace fusionrt {

class ConcatLayerNormCall {
 public:
  // Checks 2-4 inputs shaped (batch, d_i) of one dtype and device, the optional (sum d_i,) weight and
  // bias (null: absent) and eps; throws ValueError / TypeError naming what is wrong.
  ConcatLayerNormCall(const std::vector<const TensorArg*>& inputs, const TensorArg* weight, const TensorArg* bias,
                      double eps);

  const TensorArg& reference() const { return first_; }
  // (batch, sum d_i), by ConcatLayerNormContract::kOutputShape.
  const std::vector<int64_t>& output_shape() const { return output_shape_; }
  // Checks `out` (output_shape(), the inputs' dtype and device, writeable, features contiguous).
  void set_output(const TensorArg& out);
  // Runs the kernel: on the CPU it returns when done; on CUDA it is asynchronous on `cuda_stream`.
  void run(intptr_t cuda_stream) const;

 private:
  ConcatLayerNormParams params_;
  TensorArg first_;  // metadata only, for the output's checks and messages
  std::vector<int64_t> output_shape_;
};

}  // namespace fusionrt
