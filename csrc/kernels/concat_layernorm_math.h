// Per-element steps of fused concat + LayerNorm, shared by the CPU and CUDA kernels.
#pragma once

#include "concat_layernorm.h"
#include "moments.h"

namespace fusionrt {

// Row `row` of input `i`, as its storage type.
template <typename T>
FUSIONRT_HD const T* input_row(const ConcatLayerNormParams& p, int i, int64_t row) {
  return static_cast<const T*>(p.inputs[i]) + row * p.row_strides[i];
}

// Row `row` of the output, as its storage type.
template <typename T>
FUSIONRT_HD T* output_row(const ConcatLayerNormParams& p, int64_t row) {
  return static_cast<T*>(p.output) + row * p.output_row_stride;
}

// out[col] = (x - mean) * inv_std * weight[col] + bias[col]; absent weight / bias act as 1 / 0.
template <typename T>
FUSIONRT_HD void normalize_store(T* out, int64_t col, acc_t<T> x, acc_t<T> mean, acc_t<T> inv_std,
                                 const T* weight, const T* bias) {
  using A = acc_t<T>;
  const A w = weight ? load_acc(weight[col]) : A(1);
  const A b = bias ? load_acc(bias[col]) : A(0);
  out[col] = store_acc<T>(normalize_affine(x, mean, inv_std, w, b));
}

}  // namespace fusionrt
