// Warp and block reductions of mergeable moments: the CUDA-only part of the LayerNorm statistics.
#pragma once

#include "../moments.h"

namespace fusionrt {

template <typename A>
__device__ __forceinline__ Moments<A> warp_merge(Moments<A> s) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const Moments<A> other{__shfl_xor_sync(0xffffffffu, s.count, offset),
                           __shfl_xor_sync(0xffffffffu, s.mean, offset),
                           __shfl_xor_sync(0xffffffffu, s.m2, offset)};
    s = merge(s, other);
  }
  return s;
}

// Every thread of the block gets the moments of the whole block. blockDim.x must be a multiple of 32.
template <typename A>
__device__ Moments<A> block_merge(Moments<A> s) {
  __shared__ Moments<A> per_warp[32];
  __shared__ Moments<A> total;
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  s = warp_merge(s);
  if (lane == 0) per_warp[warp] = s;
  __syncthreads();
  if (warp == 0) {
    const int num_warps = blockDim.x / 32;
    s = lane < num_warps ? per_warp[lane] : Moments<A>{A(0), A(0), A(0)};
    s = warp_merge(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

}  // namespace fusionrt
