// Mean / variance as a mergeable summary (count, mean, M2), combined with Chan et al.'s formula.
//
// The CPU kernel summarises each input tensor's slice of a row with two vectorisable passes and merges
// the summaries; the CUDA kernel folds elements in one at a time per thread and merges across the
// warp and the block. Both use `merge` below, so a CPU test of the merge checks the GPU's too.
#pragma once

#include "numeric.h"

namespace fusionrt {

template <typename A>
struct Moments {
  A count;
  A mean;
  A m2;  // sum of squared deviations from the mean
};

template <typename A>
FUSIONRT_HD Moments<A> merge(Moments<A> a, Moments<A> b) {
  const A count = a.count + b.count;
  if (count == A(0)) return Moments<A>{A(0), A(0), A(0)};
  const A delta = b.mean - a.mean;
  const A weight_b = b.count / count;
  return Moments<A>{count, a.mean + delta * weight_b, a.m2 + b.m2 + delta * delta * a.count * weight_b};
}

template <typename A>
FUSIONRT_HD Moments<A> add_sample(Moments<A> s, A x) {
  return merge(s, Moments<A>{A(1), x, A(0)});
}

// 1 / sqrt(biased variance + eps), as torch.nn.functional.layer_norm normalises.
template <typename A>
FUSIONRT_HD A inverse_std(Moments<A> s, A eps) {
  const A variance = s.count > A(0) ? s.m2 / s.count : A(0);
  return reciprocal_sqrt((variance > A(0) ? variance : A(0)) + eps);
}

template <typename A>
FUSIONRT_HD A normalize_affine(A x, A mean, A inv_std, A weight, A bias) {
  return (x - mean) * inv_std * weight + bias;
}

}  // namespace fusionrt
