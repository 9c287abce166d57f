#include "../image_preprocess.h"

#include <stdexcept>

#include "../image_preprocess_math.h"
#include "cuda_check.h"

namespace fusionrt {
namespace {

// One thread per output pixel: its vertical and horizontal taps come from the per-axis rules the CPU
// kernel tabulates, so both resample identically; the three channels share the taps. Neighbouring
// threads read neighbouring source pixels, so the uint8 loads coalesce through L1.
__global__ void image_preprocess_kernel(const ImagePreprocessParams p, const ResampleAxis ax, const ResampleAxis ay,
                                        const ChannelAffine a0, const ChannelAffine a1, const ChannelAffine a2) {
  const int64_t x = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t y = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y;
  if (x >= p.width || y >= p.height) return;
  int64_t x0 = 0, y0 = 0;
  const int64_t nx = resample_taps(ax, x, &x0);
  const int64_t ny = resample_taps(ay, y, &y0);
  const float norm = resample_norm(ax, x, x0, nx) * resample_norm(ay, y, y0, ny);
  float acc[3] = {0.f, 0.f, 0.f};
  for (int64_t ky = 0; ky < ny; ++ky) {
    const float wy = resample_weight(ay, y, y0 + ky);
    const uint8_t* row = p.src + (y0 + ky) * p.src_row_stride + x0 * p.src_pixel_stride;
    float line[3] = {0.f, 0.f, 0.f};
    for (int64_t kx = 0; kx < nx; ++kx) {
      const float wx = resample_weight(ax, x, x0 + kx);
      const uint8_t* px = row + kx * p.src_pixel_stride;
      line[0] += wx * static_cast<float>(px[0]);
      line[1] += wx * static_cast<float>(px[1]);
      line[2] += wx * static_cast<float>(px[2]);
    }
    acc[0] += wy * line[0];
    acc[1] += wy * line[1];
    acc[2] += wy * line[2];
  }
  const ChannelAffine affine[3] = {a0, a1, a2};
  for (int c = 0; c < 3; ++c) {
    const float v = acc[p.swap_rb ? 2 - c : c] * norm;
    p.output[output_index(p.nchw, p.height, p.width, y, x, c)] = normalize_pixel(v, affine[c]);
  }
}

}  // namespace

void image_preprocess_cuda(const ImagePreprocessParams& p, cudaStream_t stream) {
  const std::string error = check_image_preprocess(p);
  if (!error.empty()) throw std::invalid_argument(error);
  const dim3 block(32, 8);
  const dim3 grid(static_cast<unsigned>((p.width + block.x - 1) / block.x),
                  static_cast<unsigned>((p.height + block.y - 1) / block.y));
  image_preprocess_kernel<<<grid, block, 0, stream>>>(p, resample_axis(p.src_width, p.width),
                                                      resample_axis(p.src_height, p.height),
                                                      channel_affine(p.mean[0], p.std[0]),
                                                      channel_affine(p.mean[1], p.std[1]),
                                                      channel_affine(p.mean[2], p.std[2]));
  throw_on_cuda_error(cudaGetLastError(), "image_preprocess_cuda launch");
}

}  // namespace fusionrt
