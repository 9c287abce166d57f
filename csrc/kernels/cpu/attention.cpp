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

// Register blocking of the two small matrix products per tile, like a GEMM micro-kernel: kRows query
// rows share every key / value vector load, kLanes consecutive keys (scores) or features (outputs) share
// every broadcast of a query feature / weight. kRows x kLanes accumulators must keep the FMA pipes busy
// without spilling: 4 x 16 (8 of AVX2's 16 vector registers, 16 of NEON's 32), or 8 x 32 on AVX-512
// (16 of its 32).
struct Blocking {
  int rows;
  int lanes;
};
constexpr Blocking kNarrow{4, 16};
constexpr Blocking kWide{8, 32};
// Keys per online-softmax step (a multiple of every kLanes): the scores of a tile stay in L1, and the
// running max is rescaled once per tile rather than once per key.
constexpr int64_t kKeyTile = 128;
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

// dst[0, dim_pad) = src[0, dim) in the accumulation type, zero-padded; all zeros for a null src.
template <typename T>
void stage_row(acc_t<T>* dst, const T* src, int64_t dim, int64_t dim_pad) {
  const int64_t valid = src ? dim : 0;
#pragma omp simd
  for (int64_t d = 0; d < valid; ++d) dst[d] = load_acc(src[d]);
  for (int64_t d = valid; d < dim_pad; ++d) dst[d] = acc_t<T>(0);
}

// One (batch, head) pair. K is staged transposed (head_dim × keys) and V as (keys × head_dim), both
// in the accumulation type and zero-padded to kLanes multiples, so the inner loops are fixed-width
// FMA blocks on converted data whatever the storage type and strides.
template <typename T, int kRows, int64_t kLanes>
FUSIONRT_SIMD_CLONES void attend_pair(const AttentionParams& p, int64_t b, int64_t h) {
  using A = acc_t<T>;
  const int64_t lk = p.lk;
  const int64_t dim = p.head_dim;
  const int64_t lk_pad = round_up(lk, kLanes);
  const int64_t dim_pad = round_up(dim, kLanes);

  A* const kt = scratch<A>(static_cast<size_t>((2 * dim_pad + 1) * lk_pad));
  A* const vs = kt + dim_pad * lk_pad;
  // Additive key bias: 0 for attended keys, -inf (weight exp2(-inf) = 0) for masked and padding keys,
  // so that applying the mask is one vector add per score block.
  A* const key_bias = vs + lk_pad * dim_pad;
  const uint8_t* const mask = p.key_mask ? p.key_mask + b * p.key_mask_batch_stride : nullptr;
  const A neg_inf = -static_cast<A>(INFINITY);
  for (int64_t j = 0; j < lk_pad; ++j) {
    key_bias[j] = j < lk && (mask == nullptr || mask[j] != 0) ? A(0) : neg_inf;
  }
  for (int64_t j = 0; j < lk_pad; ++j) {
    stage_row(vs + j * dim_pad, j < lk ? bhs_row(static_cast<const T*>(p.v), p.v_strides, b, h, j) : nullptr, dim,
              dim_pad);
  }
  // K goes through a tile of kLanes rows so that its transposed writes are contiguous runs of kLanes.
  for (int64_t j0 = 0; j0 < lk_pad; j0 += kLanes) {
    alignas(64) A tile[kLanes][AttentionParams::kMaxHeadDim];
    for (int64_t jj = 0; jj < kLanes; ++jj) {
      const int64_t j = j0 + jj;
      stage_row(tile[jj], j < lk ? bhs_row(static_cast<const T*>(p.k), p.k_strides, b, h, j) : nullptr, dim, dim_pad);
    }
    // 8 x 8 blocks of fixed size, which the compiler turns into register shuffles.
    for (int64_t d0 = 0; d0 < dim_pad; d0 += 8) {
      for (int64_t c0 = 0; c0 < kLanes; c0 += 8) {
#pragma GCC unroll 8
        for (int64_t a = 0; a < 8; ++a) {
#pragma GCC unroll 8
          for (int64_t c = 0; c < 8; ++c) kt[(d0 + a) * lk_pad + j0 + c0 + c] = tile[c0 + c][d0 + a];
        }
      }
    }
  }
  const A q_scale = base2_scale<A>(p.scale);

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
      // Scores: kRows × kLanes accumulators live in registers across the head_dim loop. The key bias
      // is added as the block is stored; lane-wise maxima follow.
      A lane_max[kRows][kLanes];
      for (int r = 0; r < kRows; ++r) {
        for (int64_t jj = 0; jj < kLanes; ++jj) lane_max[r][jj] = neg_inf;
      }
      for (int64_t j0 = 0; j0 < n_pad; j0 += kLanes) {
        A block[kRows][kLanes] = {};
        for (int64_t d = 0; d < dim; ++d) {
          const A* kd = kt + d * lk_pad + t0 + j0;
          for (int r = 0; r < kRows; ++r) {
#pragma omp simd
            for (int64_t jj = 0; jj < kLanes; ++jj) block[r][jj] += q[r][d] * kd[jj];
          }
        }
        const A* bias = key_bias + t0 + j0;
        for (int r = 0; r < kRows; ++r) {
#pragma omp simd
          for (int64_t jj = 0; jj < kLanes; ++jj) {
            const A score = block[r][jj] + bias[jj];
            s[r][j0 + jj] = score;
            lane_max[r][jj] = score > lane_max[r][jj] ? score : lane_max[r][jj];
          }
        }
      }
      for (int r = 0; r < rows; ++r) {
        A tile_max = neg_inf;
#pragma omp simd reduction(max : tile_max)
        for (int64_t jj = 0; jj < kLanes; ++jj) tile_max = lane_max[r][jj] > tile_max ? lane_max[r][jj] : tile_max;
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
  const bool wide = cpu_has_avx512();
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const auto attend = wide ? attend_pair<T, kWide.rows, kWide.lanes> : attend_pair<T, kNarrow.rows, kNarrow.lanes>;
#pragma omp parallel for schedule(static) if (macs >= kParallelMacs)
    for (int64_t pair = 0; pair < pairs; ++pair) attend(p, pair / p.heads, pair % p.heads);
  });
}

}  // namespace fusionrt
