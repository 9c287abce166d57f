// Fused multi-head attention as the front ends call it: check the arguments against the op's contract
// (attention_contract.h), let the front end allocate the output it needs, then run the CPU or CUDA
// kernel on the inputs' device.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "attention_contract.h"
#include "kernels/attention.h"
#include "op_args.h"

namespace fusionrt {

class AttentionCall {
 public:
  // Checks q (batch, heads, Lq, head_dim), k and v (batch, heads, Lk, head_dim) of one dtype and
  // device with contiguous head_dim <= 128, the optional (batch, Lk) key padding mask (null: absent;
  // one byte per key) and the scale (default 1 / sqrt(head_dim)); throws ValueError / TypeError.
  AttentionCall(const TensorArg& q, const TensorArg& k, const TensorArg& v, const ArrayArg* key_padding_mask,
                std::optional<double> scale);

  const TensorArg& reference() const { return q_; }
  // q's shape, by MultiheadAttentionContract::kOutputShape.
  const std::vector<int64_t>& output_shape() const { return output_shape_; }
  // Checks `out` (output_shape(), q's dtype and device, writeable, head_dim contiguous).
  void set_output(const TensorArg& out);
  // Runs the kernel: on the CPU it returns when done; on CUDA it is asynchronous on `cuda_stream`.
  void run(intptr_t cuda_stream) const;

 private:
  AttentionParams params_;
  TensorArg q_;  // metadata only, for the output's checks and messages
  std::vector<int64_t> output_shape_;
};

}  // namespace fusionrt
