// Fused concat + LayerNorm: y = LayerNorm(concat(x_0, ..., x_{n-1}), weight, bias, eps) over the
// feature axis, for 2-4 inputs shaped (rows, width_i), without materialising the concatenation.
//
// Pure math: raw pointers, sizes and strides in, no framework types. The CPU entry point is always
// compiled; the CUDA one exists when fusionrt is built with CUDA (FUSIONRT_WITH_CUDA).
#pragma once

#include <cstdint>
#include <string>

#include "numeric.h"

#if FUSIONRT_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace fusionrt {

struct ConcatLayerNormParams {
  static constexpr int kMaxInputs = 4;
  static constexpr int kMinInputs = 2;

  const void* inputs[kMaxInputs] = {};
  int64_t widths[kMaxInputs] = {};       // features of each input
  int64_t row_strides[kMaxInputs] = {};  // elements between rows (any, 0 broadcasts); features contiguous
  int num_inputs = 0;
  int64_t rows = 0;

  const void* weight = nullptr;  // optional, total_width elements, same dtype as the inputs
  const void* bias = nullptr;    // optional, likewise
  void* output = nullptr;        // (rows, total_width), row stride output_row_stride
  int64_t output_row_stride = 0;

  double eps = 1e-5;
  DType dtype = DType::kFloat32;

  int64_t total_width() const {
    int64_t total = 0;
    for (int i = 0; i < num_inputs; ++i) total += widths[i];
    return total;
  }
};

// Empty when `params` describe a valid call, otherwise what is wrong; every launcher checks it first.
std::string check_concat_layernorm(const ConcatLayerNormParams& params);

// Rows run in parallel on the CPU threads (OpenMP) when the work is large enough to pay for them.
void concat_layernorm_cpu(const ConcatLayerNormParams& params);

#if FUSIONRT_WITH_CUDA
// One launch: a thread block per row, warp + block reductions. Asynchronous on `stream`.
void concat_layernorm_cuda(const ConcatLayerNormParams& params, cudaStream_t stream);
#endif

}  // namespace fusionrt
