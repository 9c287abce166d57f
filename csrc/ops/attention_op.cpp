#include "attention_op.h"

#include <cmath>

namespace fusionrt {
namespace {

using Contract = MultiheadAttentionContract;

constexpr const char* kAxisNames[] = {"batch", "heads", "length", "head_dim"};

// Throws ValueError unless `arg` has `expected` along `axis`, the size `reference` gave it.
void expect_axis(const ArrayArg& arg, size_t axis, int64_t expected, const char* reference) {
  if (arg.dim(axis) != expected) {
    throw ValueError(arg.name + " has " + kAxisNames[axis] + " " + std::to_string(arg.dim(axis)) + ", expected " +
                     std::to_string(expected) + " (" + reference + ")");
  }
}

void expect_bhsd(const TensorArg& arg, const char* layout) {
  arg.expect_ndim(4, layout);
  arg.expect_inner_contiguous();
}

BhsStrides bhs_strides(const TensorArg& arg) { return {arg.strides[0], arg.strides[1], arg.strides[2]}; }

}  // namespace

AttentionCall::AttentionCall(const TensorArg& q, const TensorArg& k, const TensorArg& v,
                             const ArrayArg* key_padding_mask, std::optional<double> scale) {
  expect_bhsd(q, "(batch, heads, Lq, head_dim)");
  expect_bhsd(k, "(batch, heads, Lk, head_dim)");
  expect_bhsd(v, "(batch, heads, Lk, head_dim)");
  for (const TensorArg* arg : {&k, &v}) {
    expect_same_dtype_and_device(*arg, q);
    expect_axis(*arg, 0, q.dim(0), "the batch of q");
    expect_axis(*arg, 1, q.dim(1), "the heads of q");
    expect_axis(*arg, 3, q.dim(3), "the head_dim of q");
  }
  expect_axis(v, 2, k.dim(2), "the length of k");
  if (q.dim(3) > Contract::kMaxHeadDim) {
    throw ValueError("q has head_dim " + std::to_string(q.dim(3)) + ", expected at most " +
                     std::to_string(Contract::kMaxHeadDim));
  }
  const TensorArg* data_inputs[] = {&q, &k, &v};
  output_shape_ = evaluate_output_shape(Contract::kOutputShape, MultiheadAttentionConfig::kNbDataInputs,
                                        [&](int32_t input, int32_t axis) { return data_inputs[input]->dim(axis); });

  params_.q = q.data;
  params_.k = k.data;
  params_.v = v.data;
  params_.q_strides = bhs_strides(q);
  params_.k_strides = bhs_strides(k);
  params_.v_strides = bhs_strides(v);
  params_.batch = q.dim(0);
  params_.heads = q.dim(1);
  params_.lq = q.dim(2);
  params_.lk = k.dim(2);
  params_.head_dim = q.dim(3);
  params_.dtype = q.dtype;
  params_.scale = scale.value_or(1.0 / std::sqrt(static_cast<double>(params_.head_dim)));
  if (!std::isfinite(params_.scale)) throw ValueError("scale must be finite, got " + std::to_string(params_.scale));

  if (key_padding_mask != nullptr) {
    const ArrayArg& mask = *key_padding_mask;
    expect_same_device(mask, q);
    mask.expect_ndim(2, "(batch, Lk)");
    expect_axis(mask, 0, params_.batch, "the batch of q");
    if (mask.dim(1) != params_.lk) {
      throw ValueError(mask.name + " has " + std::to_string(mask.dim(1)) + " keys, expected " +
                       std::to_string(params_.lk) + " (the length of k)");
    }
    mask.expect_inner_contiguous();
    params_.key_mask = static_cast<const uint8_t*>(mask.data);
    params_.key_mask_batch_stride = mask.strides[0];
  }
  q_ = q;
  q_.data = nullptr;
}

void AttentionCall::set_output(const TensorArg& out) {
  expect_output(out, q_, output_shape_, "(batch, heads, Lq, head_dim)", "the shape of q");
  params_.out = out.data;
  params_.out_strides = bhs_strides(out);
}

void AttentionCall::run(intptr_t cuda_stream) const {
  if (q_.device.is_cpu()) return attention_cpu(params_);
#if FUSIONRT_WITH_CUDA
  attention_cuda(params_, reinterpret_cast<cudaStream_t>(cuda_stream));
#else
  (void)cuda_stream;
  throw_built_without_cuda(q_);
#endif
}

}  // namespace fusionrt
