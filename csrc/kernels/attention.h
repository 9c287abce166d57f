// Fused multi-head attention: out = softmax(q kᵀ · scale + mask) v per (batch, head), for the short
// token streams of early / hybrid fusion (tens to a few hundred tokens, head_dim <= 128).
//
// Pure math: raw pointers, sizes and strides in, no framework types. The CPU entry point is always
// compiled; the CUDA one exists when fusionrt is built with CUDA (FUSIONRT_WITH_CUDA).
//
// A query row whose keys are all masked out has no softmax (what torch's scaled_dot_product_attention
// gives depends on its backend, NaN for some); here its output is defined as zeros, so a sample with a whole modality absent stays
// finite through the network.
#pragma once

#include <cstdint>
#include <string>

#include "numeric.h"

#if FUSIONRT_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace fusionrt {

// Element strides of a (batch, heads, length, head_dim) tensor whose last dim is contiguous.
struct BhsStrides {
  int64_t batch = 0;
  int64_t head = 0;
  int64_t seq = 0;
};

struct AttentionParams {
  static constexpr int64_t kMaxHeadDim = 128;

  const void* q = nullptr;  // (batch, heads, lq, head_dim)
  const void* k = nullptr;  // (batch, heads, lk, head_dim)
  const void* v = nullptr;  // (batch, heads, lk, head_dim)
  void* out = nullptr;      // (batch, heads, lq, head_dim)
  BhsStrides q_strides, k_strides, v_strides, out_strides;

  int64_t batch = 0;
  int64_t heads = 0;
  int64_t lq = 0;
  int64_t lk = 0;
  int64_t head_dim = 0;

  // Optional (batch, lk) key padding mask, one byte per key, nonzero = attend; keys contiguous.
  const uint8_t* key_mask = nullptr;
  int64_t key_mask_batch_stride = 0;

  double scale = 1.0;  // multiplies q kᵀ; callers default it to 1 / sqrt(head_dim)
  DType dtype = DType::kFloat32;
};

// Empty when `params` describe a valid call, otherwise what is wrong; every launcher checks it first.
std::string check_attention(const AttentionParams& params);

// (batch, head) pairs run in parallel on the CPU threads (OpenMP) when the work pays for them.
void attention_cpu(const AttentionParams& params);

#if FUSIONRT_WITH_CUDA
// One launch: a thread block per (batch, head, tile of query rows), key / value tiles staged in shared
// memory, one pass of online softmax. Asynchronous on `stream`.
void attention_cuda(const AttentionParams& params, cudaStream_t stream);
#endif

}  // namespace fusionrt
