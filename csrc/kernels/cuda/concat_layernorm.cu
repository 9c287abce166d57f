#include "../concat_layernorm.h"

#include <stdexcept>

#include "../concat_layernorm_math.h"
#include "cuda_check.h"
#include "reduce.cuh"

namespace fusionrt {
namespace {

// One block per row: each thread folds a strided slice of the row into its moments, the block merges
// them, then the same threads normalise their slice (the second read hits L2 for these row sizes).
template <typename T>
__global__ void concat_layernorm_kernel(const ConcatLayerNormParams p) {
  using A = acc_t<T>;
  const int64_t row = blockIdx.x;
  Moments<A> stats{A(0), A(0), A(0)};
  for (int i = 0; i < p.num_inputs; ++i) {
    const T* x = input_row<T>(p, i, row);
    for (int64_t j = threadIdx.x; j < p.widths[i]; j += blockDim.x) stats = add_sample(stats, load_acc(x[j]));
  }
  stats = block_merge(stats);
  const A inv_std = inverse_std(stats, static_cast<A>(p.eps));

  T* out = output_row<T>(p, row);
  const T* weight = static_cast<const T*>(p.weight);
  const T* bias = static_cast<const T*>(p.bias);
  int64_t offset = 0;
  for (int i = 0; i < p.num_inputs; ++i) {
    const T* x = input_row<T>(p, i, row);
    for (int64_t j = threadIdx.x; j < p.widths[i]; j += blockDim.x) {
      normalize_store(out, offset + j, load_acc(x[j]), stats.mean, inv_std, weight, bias);
    }
    offset += p.widths[i];
  }
}

// Enough warps for ~4 elements per thread, between one warp and 512 threads.
int threads_for_width(int64_t width) {
  int64_t threads = (width / 4 + 31) / 32 * 32;
  if (threads < 32) threads = 32;
  if (threads > 512) threads = 512;
  return static_cast<int>(threads);
}

}  // namespace

void concat_layernorm_cuda(const ConcatLayerNormParams& p, cudaStream_t stream) {
  const std::string error = check_concat_layernorm(p);
  if (!error.empty()) throw std::invalid_argument(error);
  if (p.rows == 0) return;
  const int threads = threads_for_width(p.total_width());
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    concat_layernorm_kernel<T><<<static_cast<unsigned>(p.rows), threads, 0, stream>>>(p);
  });
  throw_on_cuda_error(cudaGetLastError(), "concat_layernorm_cuda launch");
}

}  // namespace fusionrt
