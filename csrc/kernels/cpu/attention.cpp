#include "../attention.h"

#include <stdexcept>
#include <vector>

#include "../attention_math.h"
#include "simd_clones.h"

namespace fusionrt {

std::string check_attention(const AttentionParams& p) {
  const std::pair<const char*, int64_t> sizes[] = {
      {"batch", p.batch}, {"heads", p.heads}, {"lq", p.lq}, {"lk", p.lk}};
  for (const auto& [name, size] : sizes) {
    if (size < 0) return std::string(name) + " must be >= 0, got " + std::to_string(size);
  }
  if (p.head_dim <= 0 || p.head_dim > AttentionParams::kMaxHeadDim) {
    return "head_dim must be in [1, " + std::to_string(AttentionParams::kMaxHeadDim) + "], got " +
           std::to_string(p.head_dim);
  }
  const bool has_queries = p.batch > 0 && p.heads > 0 && p.lq > 0;
  if (has_queries && (p.q == nullptr || p.out == nullptr)) return "q or out is a null pointer";
  if (has_queries && p.lk > 0 && (p.k == nullptr || p.v == nullptr)) return "k or v is a null pointer";
  if (!(p.scale == p.scale) || p.scale == INFINITY || p.scale == -INFINITY) {
    return "scale must be finite, got " + std::to_string(p.scale);
  }
  return {};
}

namespace {

// Register blocking of the two small matrix products per tile: kRows query rows share every key and
// value load; kLanes consecutive keys (scores) or features (outputs) are one AVX-512 or two AVX2 / four
// NEON vectors, so kRows x kLanes accumulators fit the register file.
constexpr int kRows = 4;
constexpr int64_t kLanes = 16;
// Keys per online-softmax step: the scores of a tile stay in L1, and the running max is rescaled
// once per tile rather than once per key.
constexpr int64_t kKeyTile = 64;
// Below this many multiply-adds (q kᵀ and p v together), waking threads costs more than the math.
constexpr int64_t kParallelMacs = int64_t{1} << 17;

constexpr int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Per-thread scratch that keeps its capacity across calls: no allocation once warm.
template <typename A>
A* scratch(size_t elements) {
  thread_local std::vector<A> buffer;
  if (buffer.size() < elements) buffer.resize(elements);
  return buffer.data();
}

// One (batch, head) pair. K is staged transposed (head_dim × keys) and V as (keys × head_dim), both
// in the accumulation type and zero-padded to kLanes multiples, so the inner loops are fixed-width
// FMA blocks on converted data whatever the storage type and strides.
template <typename T>
FUSIONRT_SIMD_CLONES void attend_pair(const AttentionParams& p, int64_t b, int64_t h) {
  using A = acc_t<T>;
  const int64_t lk = p.lk;
  const int64_t dim = p.head_dim;
  const int64_t lk_pad = round_up(lk, kLanes);
  const int64_t dim_pad = round_up(dim, kLanes);

  A* const kt = scratch<A>(static_cast<size_t>(2 * dim_pad * lk_pad));
  A* const vs = kt + dim_pad * lk_pad;
  for (int64_t j = 0; j < lk_pad; ++j) {
    const T* k = j < lk ? bhs_row(static_cast<const T*>(p.k), p.k_strides, b, h, j) : nullptr;
    const T* v = j < lk ? bhs_row(static_cast<const T*>(p.v), p.v_strides, b, h, j) : nullptr;
    for (int64_t d = 0; d < dim_pad; ++d) {
      const bool inside = k != nullptr && d < dim;
      kt[d * lk_pad + j] = inside ? load_acc(k[d]) : A(0);
      vs[j * dim_pad + d] = inside ? load_acc(v[d]) : A(0);
    }
  }
  const uint8_t* const mask = p.key_mask ? p.key_mask + b * p.key_mask_batch_stride : nullptr;
  const A q_scale = base2_scale<A>(p.scale);
  const A neg_inf = -static_cast<A>(INFINITY);

  for (int64_t i0 = 0; i0 < p.lq; i0 += kRows) {
    const int rows = static_cast<int>(p.lq - i0 < kRows ? p.lq - i0 : kRows);
    alignas(64) A q[kRows][AttentionParams::kMaxHeadDim] = {};
    alignas(64) A acc[kRows][AttentionParams::kMaxHeadDim] = {};
    alignas(64) A s[kRows][kKeyTile];
    SoftmaxState<A> state[kRows];
    for (int r = 0; r < kRows; ++r) state[r] = softmax_init<A>();
    for (int r = 0; r < rows; ++r) {
      const T* x = bhs_row(static_cast<const T*>(p.q), p.q_strides, b, h, i0 + r);
      for (int64_t d = 0; d < dim; ++d) q[r][d] = load_acc(x[d]) * q_scale;
    }

    for (int64_t t0 = 0; t0 < lk; t0 += kKeyTile) {
      const int64_t n = lk - t0 < kKeyTile ? lk - t0 : kKeyTile;
      const int64_t n_pad = round_up(n, kLanes);
      // Scores: kRows × kLanes accumulators live in registers across the head_dim loop.
      for (int64_t j0 = 0; j0 < n_pad; j0 += kLanes) {
        A block[kRows][kLanes] = {};
        for (int64_t d = 0; d < dim; ++d) {
          const A* kd = kt + d * lk_pad + t0 + j0;
          for (int r = 0; r < kRows; ++r) {
#pragma omp simd
            for (int64_t jj = 0; jj < kLanes; ++jj) block[r][jj] += q[r][d] * kd[jj];
          }
        }
        for (int r = 0; r < kRows; ++r) {
          for (int64_t jj = 0; jj < kLanes; ++jj) s[r][j0 + jj] = block[r][jj];
        }
      }
      // Padding keys and masked keys get -inf: weight exp2(-inf) = 0.
      for (int r = 0; r < rows; ++r) {
#pragma omp simd
        for (int64_t j = 0; j < n_pad; ++j) {
          const bool attended = j < n && (mask == nullptr || mask[t0 + j] != 0);
          s[r][j] = attended ? s[r][j] : neg_inf;
        }
      }
      for (int r = 0; r < rows; ++r) {
        A tile_max = neg_inf;
#pragma omp simd reduction(max : tile_max)
        for (int64_t j = 0; j < n_pad; ++j) tile_max = s[r][j] > tile_max ? s[r][j] : tile_max;
        if (tile_max == neg_inf) {  // no attended key in this tile: contributes nothing
          for (int64_t j = 0; j < n_pad; ++j) s[r][j] = A(0);
          continue;
        }
        const A factor = softmax_rescale(state[r], tile_max);
        if (factor != A(1)) {
#pragma omp simd
          for (int64_t d = 0; d < dim_pad; ++d) acc[r][d] *= factor;
        }
        A tile_sum = A(0);
#pragma omp simd reduction(+ : tile_sum)
        for (int64_t j = 0; j < n_pad; ++j) {
          s[r][j] = softmax_weight(state[r], s[r][j]);
          tile_sum += s[r][j];
        }
        state[r].sum += tile_sum;
      }
      // acc += p v: kRows × kLanes output accumulators in registers across the tile's keys.
      for (int64_t d0 = 0; d0 < dim_pad; d0 += kLanes) {
        A block[kRows][kLanes];
        for (int r = 0; r < kRows; ++r) {
          for (int64_t dd = 0; dd < kLanes; ++dd) block[r][dd] = acc[r][d0 + dd];
        }
        for (int64_t j = 0; j < n; ++j) {
          const A* v = vs + (t0 + j) * dim_pad + d0;
          for (int r = 0; r < kRows; ++r) {
#pragma omp simd
            for (int64_t dd = 0; dd < kLanes; ++dd) block[r][dd] += s[r][j] * v[dd];
          }
        }
        for (int r = 0; r < kRows; ++r) {
          for (int64_t dd = 0; dd < kLanes; ++dd) acc[r][d0 + dd] = block[r][dd];
        }
      }
    }

    for (int r = 0; r < rows; ++r) {
      const A normalizer = softmax_normalizer(state[r]);
      T* out = bhs_row(static_cast<T*>(p.out), p.out_strides, b, h, i0 + r);
      for (int64_t d = 0; d < dim; ++d) out[d] = store_acc<T>(acc[r][d] * normalizer);
    }
  }
}

}  // namespace

void attention_cpu(const AttentionParams& p) {
  const std::string error = check_attention(p);
  if (!error.empty()) throw std::invalid_argument(error);
  const int64_t pairs = p.batch * p.heads;
  const int64_t macs = pairs * p.lq * p.lk * p.head_dim * 2;
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
#pragma omp parallel for schedule(static) if (macs >= kParallelMacs)
    for (int64_t pair = 0; pair < pairs; ++pair) attend_pair<T>(p, pair / p.heads, pair % p.heads);
  });
}

}  // namespace fusionrt
