// Per-axis resampling rules and per-pixel arithmetic of image pre-processing, shared by the CPU and
// CUDA kernels (image_preprocess.h) so both compute the same taps, weights and normalisation.
//
// The resampling is PIL's ImagingResample with its bilinear filter, which torchvision's
// resize(antialias=True) reproduces: a triangle filter widened by the downscale factor (so shrinking
// averages every source pixel instead of skipping some), output pixel centres at (i + 0.5) * scale,
// taps clipped at the borders and the weights renormalised.
#pragma once

#include <cmath>
#include <cstdint>

#include "numeric.h"

namespace fusionrt {

struct ResampleAxis {
  float scale;             // source pixels per output pixel
  float support;           // half-width of the filter in source pixels
  float inv_filter_scale;  // maps a source distance to the triangle's argument
  int64_t in_size;
};

FUSIONRT_HD ResampleAxis resample_axis(int64_t in_size, int64_t out_size) {
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  // Upscaling interpolates (support 1); downscaling widens the filter to cover every source pixel.
  const float filter_scale = scale > 1.f ? scale : 1.f;
  return {scale, filter_scale, 1.f / filter_scale, in_size};
}

// Upper bound on the taps of any output pixel of `axis` (PIL's ksize), for buffer sizes.
FUSIONRT_HD int64_t max_taps(const ResampleAxis& axis) {
  return static_cast<int64_t>(ceilf(axis.support)) * 2 + 1;
}

FUSIONRT_HD float resample_center(const ResampleAxis& axis, int64_t i) {
  return (static_cast<float>(i) + 0.5f) * axis.scale;
}

// The source span output pixel `i` reads: returns the tap count and sets `first` (PIL's xmin / xmax,
// rounding by truncation as it does).
FUSIONRT_HD int64_t resample_taps(const ResampleAxis& axis, int64_t i, int64_t* first) {
  const float center = resample_center(axis, i);
  int64_t lo = static_cast<int64_t>(center - axis.support + 0.5f);
  int64_t hi = static_cast<int64_t>(center + axis.support + 0.5f);
  if (lo < 0) lo = 0;
  if (hi > axis.in_size) hi = axis.in_size;
  *first = lo;
  return hi - lo;
}

// Unnormalised weight of source pixel `source` for output pixel `i` (triangle filter).
FUSIONRT_HD float resample_weight(const ResampleAxis& axis, int64_t i, int64_t source) {
  const float x = fabsf((static_cast<float>(source) - resample_center(axis, i) + 0.5f) * axis.inv_filter_scale);
  return x < 1.f ? 1.f - x : 0.f;
}

// 1 / (sum of the weights of output pixel i's taps), the renormalisation at clipped borders.
FUSIONRT_HD float resample_norm(const ResampleAxis& axis, int64_t i, int64_t first, int64_t count) {
  float sum = 0.f;
  for (int64_t k = 0; k < count; ++k) sum += resample_weight(axis, i, first + k);
  return sum != 0.f ? 1.f / sum : 0.f;
}

// (v / 255 - mean) / std as one multiply-add: scale = 1 / (255 std), shift = -mean / std.
struct ChannelAffine {
  float scale;
  float shift;
};

FUSIONRT_HD ChannelAffine channel_affine(float mean, float std) { return {1.f / (255.f * std), -mean / std}; }

FUSIONRT_HD float normalize_pixel(float resampled, ChannelAffine affine) {
  return resampled * affine.scale + affine.shift;
}

// Where output channel c of output pixel (y, x) goes, in a (3, h, w) or (h, w, 3) image.
FUSIONRT_HD int64_t output_index(bool nchw, int64_t height, int64_t width, int64_t y, int64_t x, int c) {
  return nchw ? (static_cast<int64_t>(c) * height + y) * width + x : (y * width + x) * 3 + c;
}

}  // namespace fusionrt
