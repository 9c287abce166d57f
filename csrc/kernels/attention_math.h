// Per-element steps of fused attention, shared by the CPU and CUDA kernels: addressing, the softmax
// exponent, and the online-softmax state (running max and sum) that both kernels update one key tile
// at a time, so CPU tests exercise the rescaling arithmetic the GPU runs.
//
// Scores are kept in base 2: q is pre-multiplied by scale · log2(e), so softmax weights are
// exp2(score - max), one FMA cheaper per key than exp(score · scale - max) and what the GPU's
// ex2 instruction computes natively. The op's domain is scores that stay finite in the accumulation
// type that way: |q · scale · log2 e| and every base-2 score below its largest value (beyond it, with
// scales near 1e38, float cannot hold what the float64 answer needs, and the result is unspecified).
#pragma once

#include "attention.h"

namespace fusionrt {

// Row `i` of head `h` of batch item `b` in a (batch, heads, length, head_dim) tensor.
template <typename T>
FUSIONRT_HD T* bhs_row(T* base, const BhsStrides& s, int64_t b, int64_t h, int64_t i) {
  return base + b * s.batch + h * s.head + i * s.seq;
}

// The largest finite value of the accumulation type (no numeric_limits: it is not device code).
FUSIONRT_HD double largest_finite(float) { return 3.4028234663852886e38; }
FUSIONRT_HD double largest_finite(double) { return 1.7976931348623157e308; }

// What q is multiplied by so that softmax weights are exp2(score - max). A finite scale whose base-2
// form overflows A saturates at A's largest value instead of becoming inf, which would turn a zero
// score into NaN (0 * inf) where the scaled score is 0; an infinite or NaN scale stays what it is.
template <typename A>
FUSIONRT_HD A base2_scale(double scale) {
  const double scaled = scale * 1.4426950408889634;  // log2(e)
  const double largest = largest_finite(A{});
  const bool finite = scale - scale == 0.0;  // false for inf and NaN
  if (finite && scaled > largest) return static_cast<A>(largest);
  if (finite && scaled < -largest) return static_cast<A>(-largest);
  return static_cast<A>(scaled);
}

// 2^x: 0 for x = -inf (masked keys), NaN for NaN. On the host a branch-free Cephes-style
// polynomial (relative error < 2e-7) that the compiler vectorises inside `omp simd` loops, where
// libm's exp2f would be a scalar call; on the device the native instruction behind exp2f.
FUSIONRT_HD float softmax_exp2(float x) {
#if defined(__CUDA_ARCH__)
  return exp2f(x);
#else
  const float clamped = x > 127.0f ? 127.0f : (x < -126.0f ? -126.0f : x);
  // Round to nearest with the 1.5 · 2^23 trick: no libm call, vectorises on plain SSE2 / NEON.
  const float n = (clamped + 12582912.0f) - 12582912.0f;
  const float f = clamped - n;  // [-0.5, 0.5]
  float p = 1.535336188319500e-4f;
  p = p * f + 1.339887440266574e-3f;
  p = p * f + 9.618437357674640e-3f;
  p = p * f + 5.550332471162809e-2f;
  p = p * f + 2.402264791363012e-1f;
  p = p * f + 6.931472028550421e-1f;
  p = p * f + 1.0f;
  const float two_n = float_from_bits(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
  return x < -126.0f ? 0.0f : p * two_n;
#endif
}

FUSIONRT_HD double softmax_exp2(double x) { return exp2(x); }

// Running max and sum of exp2(score - max) over the keys seen so far by one query row; the matching
// weighted sum of values (the accumulator) lives with the caller, who owns its layout.
template <typename A>
struct SoftmaxState {
  A max;
  A sum;
};

template <typename A>
FUSIONRT_HD SoftmaxState<A> softmax_init() {
  return SoftmaxState<A>{-static_cast<A>(INFINITY), A(0)};
}

// Raises the running max to cover a new tile whose largest score is `tile_max` (finite: a tile with
// no attended key is skipped) and returns the factor that the caller multiplies its accumulator by;
// the sum is rescaled here. The first tile scales by exp2(-inf) = 0, an empty accumulator anyway.
template <typename A>
FUSIONRT_HD A softmax_rescale(SoftmaxState<A>& state, A tile_max) {
  if (!(tile_max > state.max)) return A(1);
  const A factor = softmax_exp2(state.max - tile_max);
  state.max = tile_max;
  state.sum *= factor;
  return factor;
}

// Weight of a key with base-2 score `score` (-inf when masked) against the current running max.
template <typename A>
FUSIONRT_HD A softmax_weight(const SoftmaxState<A>& state, A score) {
  return softmax_exp2(score - state.max);
}

// What the accumulator is multiplied by to give the output: 1 / sum, or 0 for a row that attended to
// no key at all (its defined output is zeros).
template <typename A>
FUSIONRT_HD A softmax_normalizer(const SoftmaxState<A>& state) {
  return state.sum > A(0) ? A(1) / state.sum : A(0);
}

}  // namespace fusionrt
