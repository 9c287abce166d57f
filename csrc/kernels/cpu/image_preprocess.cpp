#include "../image_preprocess.h"

#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#include "../image_preprocess_math.h"
#include "simd_clones.h"

namespace fusionrt {
namespace {

// Beyond this the float pixel centres lose whole pixels; JPEG's own limit is 65535.
constexpr int64_t kMaxSide = int64_t{1} << 16;

std::string side_error(const char* what, int64_t value) {
  return std::string(what) + " is " + std::to_string(value) + ", expected 1 to " + std::to_string(kMaxSide);
}

}  // namespace

std::string check_image_preprocess(const ImagePreprocessParams& p) {
  for (const auto& [what, value] : {std::pair{"source height", p.src_height}, std::pair{"source width", p.src_width},
                                    std::pair{"output height", p.height}, std::pair{"output width", p.width}}) {
    if (value < 1 || value > kMaxSide) return side_error(what, value);
  }
  if (p.src == nullptr) return "source is a null pointer";
  if (p.output == nullptr) return "output is a null pointer";
  if (p.src_pixel_stride < ImagePreprocessParams::kChannels) {
    return "source pixel stride is " + std::to_string(p.src_pixel_stride) + " bytes, expected >= 3 (RGB)";
  }
  if (p.src_row_stride < p.src_width * p.src_pixel_stride) {
    return "source row stride is " + std::to_string(p.src_row_stride) + " bytes, expected >= width * pixel stride = " +
           std::to_string(p.src_width * p.src_pixel_stride);
  }
  for (int c = 0; c < ImagePreprocessParams::kChannels; ++c) {
    if (!std::isfinite(p.mean[c])) return "mean[" + std::to_string(c) + "] is not finite";
    if (!std::isfinite(p.std[c]) || p.std[c] == 0.f || !std::isfinite(1.f / (255.f * p.std[c]))) {
      return "std[" + std::to_string(c) + "] is " + std::to_string(p.std[c]) + ", expected finite and non-zero";
    }
  }
  return {};
}

namespace {

// One axis' taps for every output pixel, normalised, `stride` weights per pixel.
struct AxisTaps {
  std::vector<int64_t> first, count;
  std::vector<float> weights;
  int64_t stride = 0;

  AxisTaps(int64_t in_size, int64_t out_size) : first(out_size), count(out_size) {
    const ResampleAxis axis = resample_axis(in_size, out_size);
    stride = max_taps(axis);
    weights.assign(static_cast<size_t>(out_size * stride), 0.f);
    for (int64_t i = 0; i < out_size; ++i) {
      count[i] = resample_taps(axis, i, &first[i]);
      const float norm = resample_norm(axis, i, first[i], count[i]);
      for (int64_t k = 0; k < count[i]; ++k) weights[i * stride + k] = resample_weight(axis, i, first[i] + k) * norm;
    }
  }
};

// Output row y: blend its source rows into `row` (every byte of a source row, pixel stride included,
// so the loop is a plain vectorised multiply-add), then resample horizontally and normalise.
FUSIONRT_SIMD_CLONES __attribute__((flatten)) void preprocess_row(const ImagePreprocessParams& p, const AxisTaps& ys,
                                                                const AxisTaps& xs, const ChannelAffine* affine,
                                                                int64_t y, float* row) {
  const int64_t row_bytes = p.src_width * p.src_pixel_stride;
  const float* wy = &ys.weights[y * ys.stride];
  const uint8_t* src = p.src + ys.first[y] * p.src_row_stride;
  {
    const float w = wy[0];
#pragma omp simd
    for (int64_t j = 0; j < row_bytes; ++j) row[j] = w * static_cast<float>(src[j]);
  }
  for (int64_t k = 1; k < ys.count[y]; ++k) {
    const float w = wy[k];
    const uint8_t* s = src + k * p.src_row_stride;
#pragma omp simd
    for (int64_t j = 0; j < row_bytes; ++j) row[j] += w * static_cast<float>(s[j]);
  }
  const int64_t ps = p.src_pixel_stride;
  for (int64_t x = 0; x < p.width; ++x) {
    const float* wx = &xs.weights[x * xs.stride];
    const float* px = row + xs.first[x] * ps;
    float acc[3] = {0.f, 0.f, 0.f};
    for (int64_t k = 0; k < xs.count[x]; ++k) {
      acc[0] += wx[k] * px[k * ps];
      acc[1] += wx[k] * px[k * ps + 1];
      acc[2] += wx[k] * px[k * ps + 2];
    }
    for (int c = 0; c < 3; ++c) {
      const float v = acc[p.swap_rb ? 2 - c : c];
      p.output[output_index(p.nchw, p.height, p.width, y, x, c)] = normalize_pixel(v, affine[c]);
    }
  }
}

// Below this many source bytes, waking threads costs more than the frame (batch-1 latency).
constexpr int64_t kParallelBytes = int64_t{1} << 22;

}  // namespace

void image_preprocess_cpu(const ImagePreprocessParams& p) {
  const std::string error = check_image_preprocess(p);
  if (!error.empty()) throw std::invalid_argument(error);
  const AxisTaps ys(p.src_height, p.height), xs(p.src_width, p.width);
  ChannelAffine affine[3];
  for (int c = 0; c < 3; ++c) affine[c] = channel_affine(p.mean[c], p.std[c]);
  const int64_t row_bytes = p.src_width * p.src_pixel_stride;
#pragma omp parallel if (p.src_height * row_bytes >= kParallelBytes)
  {
    std::vector<float> row(static_cast<size_t>(row_bytes));
#pragma omp for schedule(static)
    for (int64_t y = 0; y < p.height; ++y) preprocess_row(p, ys, xs, affine, y, row.data());
  }
}

}  // namespace fusionrt
