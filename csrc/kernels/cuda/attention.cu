#include "../attention.h"

#include <stdexcept>

#include "../attention_math.h"
#include "cuda_check.h"

namespace fusionrt {
namespace {

// A block is kWarps warps; each warp owns kRowsPerWarp query rows for the whole key sequence, so the
// online-softmax state never leaves registers and needs no merge across warps. Small query tiles
// give batch-1 calls (a few heads, ~64 queries) enough blocks to spread over the SMs.
constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 2;
constexpr int kQueryTile = kWarps * kRowsPerWarp;
// One key per lane when scoring a tile.
constexpr int kKeyTile = 32;

// The block's shared memory, converted to the accumulation type once on load. kDim is the head-dim
// bucket (32, 64, 128); features past head_dim are zero so the loops need no bounds.
template <typename A, int kDim>
struct Tiles {
  A q[kQueryTile][kDim];  // pre-scaled by scale · log2(e)
  A k[kKeyTile][kDim + 1];  // +1: lanes reading one feature of different keys hit different banks
  A v[kKeyTile][kDim];
};

template <typename A>
__device__ __forceinline__ A warp_max(A x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) x = fmax(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}

template <typename A>
__device__ __forceinline__ A warp_sum(A x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

// Grid: x = batch · heads, y = query tiles. Per key tile, lane j scores key j against the warp's rows,
// the warp updates each row's running max / sum, then every lane accumulates p · v for its
// kDim / 32 features, reading the weights of the other lanes by shuffle.
template <typename T, int kDim>
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(const AttentionParams p) {
  using A = acc_t<T>;
  constexpr int kChunks = kDim / 32;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  Tiles<A, kDim>& tiles = *reinterpret_cast<Tiles<A, kDim>*>(shared_bytes);

  const int64_t b = blockIdx.x / p.heads;
  const int64_t h = blockIdx.x % p.heads;
  const int64_t q0 = static_cast<int64_t>(blockIdx.y) * kQueryTile;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;

  const A q_scale = base2_scale<A>(p.scale);
  for (int idx = threadIdx.x; idx < kQueryTile * kDim; idx += blockDim.x) {
    const int r = idx / kDim;
    const int d = idx % kDim;
    const bool inside = q0 + r < p.lq && d < p.head_dim;
    tiles.q[r][d] =
        inside ? load_acc(bhs_row(static_cast<const T*>(p.q), p.q_strides, b, h, q0 + r)[d]) * q_scale : A(0);
  }

  const A neg_inf = -static_cast<A>(INFINITY);
  const uint8_t* mask = p.key_mask ? p.key_mask + b * p.key_mask_batch_stride : nullptr;
  SoftmaxState<A> state[kRowsPerWarp];  // sum: this lane's share, reduced over the warp at the end
  A acc[kRowsPerWarp][kChunks];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    state[r] = softmax_init<A>();
#pragma unroll
    for (int c = 0; c < kChunks; ++c) acc[r][c] = A(0);
  }

  for (int64_t t0 = 0; t0 < p.lk; t0 += kKeyTile) {
    __syncthreads();  // the previous tile is consumed (and, the first time, q is staged)
    for (int idx = threadIdx.x; idx < kKeyTile * kDim; idx += blockDim.x) {
      const int j = idx / kDim;
      const int d = idx % kDim;
      const bool inside = t0 + j < p.lk && d < p.head_dim;
      tiles.k[j][d] = inside ? load_acc(bhs_row(static_cast<const T*>(p.k), p.k_strides, b, h, t0 + j)[d]) : A(0);
      tiles.v[j][d] = inside ? load_acc(bhs_row(static_cast<const T*>(p.v), p.v_strides, b, h, t0 + j)[d]) : A(0);
    }
    __syncthreads();

    const int64_t key = t0 + lane;
    const bool attended = key < p.lk && (mask == nullptr || mask[key] != 0);
    A score[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) score[r] = A(0);
#pragma unroll 8
    for (int d = 0; d < kDim; ++d) {
      const A kd = tiles.k[lane][d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) score[r] += tiles.q[warp * kRowsPerWarp + r][d] * kd;
    }

    A weight[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const A s = attended ? score[r] : neg_inf;
      const A tile_max = warp_max(s);
      weight[r] = A(0);
      if (tile_max == neg_inf) continue;  // warp-uniform: no attended key in this tile
      const A factor = softmax_rescale(state[r], tile_max);
#pragma unroll
      for (int c = 0; c < kChunks; ++c) acc[r][c] *= factor;
      weight[r] = softmax_weight(state[r], s);
      state[r].sum += weight[r];
    }

    const int keys = p.lk - t0 < kKeyTile ? static_cast<int>(p.lk - t0) : kKeyTile;
    for (int j = 0; j < keys; ++j) {
      A pj[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) pj[r] = __shfl_sync(0xffffffffu, weight[r], j);
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const A vd = tiles.v[j][lane + 32 * c];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) acc[r][c] += pj[r] * vd;
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    state[r].sum = warp_sum(state[r].sum);
    const A normalizer = softmax_normalizer(state[r]);
    const int64_t i = q0 + warp * kRowsPerWarp + r;
    if (i >= p.lq) continue;
    T* out = bhs_row(static_cast<T*>(p.out), p.out_strides, b, h, i);
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int d = lane + 32 * c;
      if (d < p.head_dim) out[d] = store_acc<T>(acc[r][c] * normalizer);
    }
  }
}

template <typename T, int kDim>
void launch(const AttentionParams& p, cudaStream_t stream) {
  using A = acc_t<T>;
  const auto kernel = attention_kernel<T, kDim>;
  constexpr int kSharedBytes = static_cast<int>(sizeof(Tiles<A, kDim>));
  // float64 tiles of the largest bucket exceed the 48 KiB that needs no opt-in (sm_87 and sm_90
  // allow up to 163 / 227 KiB per block).
  if (kSharedBytes > 48 * 1024) {
    throw_on_cuda_error(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes),
                        "attention_cuda shared memory opt-in");
  }
  const dim3 grid(static_cast<unsigned>(p.batch * p.heads), static_cast<unsigned>((p.lq + kQueryTile - 1) / kQueryTile));
  kernel<<<grid, kWarps * 32, kSharedBytes, stream>>>(p);
}

}  // namespace

void attention_cuda(const AttentionParams& p, cudaStream_t stream) {
  const std::string error = check_attention(p);
  if (!error.empty()) throw std::invalid_argument(error);
  if (p.batch == 0 || p.heads == 0 || p.lq == 0) return;
  if (p.batch * p.heads > 0x7fffffff || (p.lq + kQueryTile - 1) / kQueryTile > 65535) {
    throw std::invalid_argument("attention_cuda: batch · heads must be < 2^31 and lq < " +
                                std::to_string(65535 * kQueryTile));
  }
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (p.head_dim <= 32) {
      launch<T, 32>(p, stream);
    } else if (p.head_dim <= 64) {
      launch<T, 64>(p, stream);
    } else {
      launch<T, 128>(p, stream);
    }
  });
  throw_on_cuda_error(cudaGetLastError(), "attention_cuda launch");
}

}  // namespace fusionrt
