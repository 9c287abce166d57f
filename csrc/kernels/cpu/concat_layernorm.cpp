#include "../concat_layernorm.h"

#include <stdexcept>

#include "../concat_layernorm_math.h"
#include "simd_clones.h"

namespace fusionrt {

std::string check_concat_layernorm(const ConcatLayerNormParams& p) {
  if (p.num_inputs < ConcatLayerNormParams::kMinInputs || p.num_inputs > ConcatLayerNormParams::kMaxInputs) {
    return "expected 2 to 4 inputs, got " + std::to_string(p.num_inputs);
  }
  if (dtype_size(p.dtype) == 0) return "unknown dtype code " + std::to_string(static_cast<int>(p.dtype));
  if (p.rows < 0) return "rows must be >= 0, got " + std::to_string(p.rows);
  for (int i = 0; i < p.num_inputs; ++i) {
    const std::string name = "inputs[" + std::to_string(i) + "]";
    if (p.inputs[i] == nullptr && p.rows > 0) return name + " is a null pointer";
    if (p.widths[i] <= 0) return name + " has " + std::to_string(p.widths[i]) + " features, expected > 0";
    // Any input row stride is fine, 0 included: a broadcast row (a learned placeholder expanded over
    // the batch) is read once per output row. Only the output must not overlap itself.
  }
  if (p.output == nullptr && p.rows > 0) return "output is a null pointer";
  if (p.output_row_stride < p.total_width()) {
    return "output has row stride " + std::to_string(p.output_row_stride) + ", expected >= the total width " +
           std::to_string(p.total_width());
  }
  if (!(p.eps > 0.0)) return "eps must be > 0, got " + std::to_string(p.eps);
  return {};
}

namespace {

// y[j] = normalize_affine(x[j]) over one input's span; the affine choice is a template argument so
// that the loop has no branches and vectorises.
template <typename T, bool kWeight, bool kBias>
void normalize_span(const T* x, int64_t n, T* out, const T* weight, const T* bias, acc_t<T> mean, acc_t<T> inv_std) {
  using A = acc_t<T>;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const A w = kWeight ? load_acc(weight[j]) : A(1);
    const A b = kBias ? load_acc(bias[j]) : A(0);
    out[j] = store_acc<T>(normalize_affine(load_acc(x[j]), mean, inv_std, w, b));
  }
}

// Sum over a span of f(x[j]) with kLanes independent partial sums: one running sum would serialise
// on the add latency (4 cycles per vector), several keep the SIMD units busy.
template <typename T, typename Fn>
acc_t<T> sum_span(const T* x, int64_t n, Fn fn) {
  using A = acc_t<T>;
  constexpr int64_t kLanes = 32;
  A partial[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
#pragma omp simd
    for (int64_t lane = 0; lane < kLanes; ++lane) partial[lane] += fn(load_acc(x[j + lane]));
  }
  A sum = A(0);
  for (; j < n; ++j) sum += fn(load_acc(x[j]));
  for (int64_t lane = 0; lane < kLanes; ++lane) sum += partial[lane];
  return sum;
}

template <typename T>
void normalize_row(const ConcatLayerNormParams& p, int64_t row) {
  using A = acc_t<T>;
  // Each input's slice is summarised with two vectorised passes (mean, then squared deviations), then
  // the summaries are merged.
  Moments<A> stats{A(0), A(0), A(0)};
  for (int i = 0; i < p.num_inputs; ++i) {
    const T* x = input_row<T>(p, i, row);
    const int64_t n = p.widths[i];
    const A mean = sum_span(x, n, [](A v) { return v; }) / static_cast<A>(n);
    const A m2 = sum_span(x, n, [mean](A v) { return (v - mean) * (v - mean); });
    stats = merge(stats, Moments<A>{static_cast<A>(n), mean, m2});
  }
  const A inv_std = inverse_std(stats, static_cast<A>(p.eps));

  T* out = output_row<T>(p, row);
  const T* weight = static_cast<const T*>(p.weight);
  const T* bias = static_cast<const T*>(p.bias);
  int64_t offset = 0;
  for (int i = 0; i < p.num_inputs; ++i) {
    const T* x = input_row<T>(p, i, row);
    const int64_t n = p.widths[i];
    const T* w = weight ? weight + offset : nullptr;
    const T* b = bias ? bias + offset : nullptr;
    T* y = out + offset;
    if (w && b) normalize_span<T, true, true>(x, n, y, w, b, stats.mean, inv_std);
    else if (w) normalize_span<T, true, false>(x, n, y, w, b, stats.mean, inv_std);
    else if (b) normalize_span<T, false, true>(x, n, y, w, b, stats.mean, inv_std);
    else normalize_span<T, false, false>(x, n, y, w, b, stats.mean, inv_std);
    offset += n;
  }
}

// One clone per x86-64 ISA level (simd_clones.h); `flatten` pulls the templates into each clone so the
// loops are vectorised for that ISA.
FUSIONRT_SIMD_CLONES __attribute__((flatten)) void normalize_row_any_dtype(const ConcatLayerNormParams& p, int64_t row) {
  dispatch_dtype(p.dtype, [&](auto tag) { normalize_row<decltype(tag)>(p, row); });
}

// Below this many elements, waking threads costs more than the row math (batch-1 latency).
constexpr int64_t kParallelElements = int64_t{1} << 15;

}  // namespace

void concat_layernorm_cpu(const ConcatLayerNormParams& p) {
  const std::string error = check_concat_layernorm(p);
  if (!error.empty()) throw std::invalid_argument(error);
  const int64_t rows = p.rows;
#pragma omp parallel for schedule(static) if (rows * p.total_width() >= kParallelElements)
  for (int64_t row = 0; row < rows; ++row) normalize_row_any_dtype(p, row);
}

}  // namespace fusionrt
