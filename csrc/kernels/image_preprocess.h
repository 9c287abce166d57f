// Image pre-processing as one op: resize (bilinear with PIL's / torchvision's antialiasing), 8-bit
// HWC -> float, mean/std normalisation and the write into a batch slot in NCHW or NHWC, in one pass
// over the source pixels and without an intermediate image.
//
// Pure math: raw pointers, sizes and strides in, no framework types. The CPU entry point is always
// compiled; the CUDA one exists when fusionrt is built with CUDA (FUSIONRT_WITH_CUDA).
//
// Feeding a TensorRT engine (as jetson-inference does): copy the decoded frame to the GPU once as
// uint8 (src on the device), point `output` at the engine's bound input buffer (plus the batch slot's
// offset) and call image_preprocess_cuda on the engine's stream before enqueueV3; the float image
// never exists on the host.
#pragma once

#include <cstdint>
#include <string>

#if FUSIONRT_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace fusionrt {

struct ImagePreprocessParams {
  static constexpr int kChannels = 3;  // the output's channels; the source may carry more (RGBA, BGRX)

  const uint8_t* src = nullptr;  // source pixel (row, col) channel c at src[row*src_row_stride + col*src_pixel_stride + c]
  int64_t src_height = 0;
  int64_t src_width = 0;
  int64_t src_row_stride = 0;    // bytes; anything >= src_width * src_pixel_stride (crops and padded rows)
  int64_t src_pixel_stride = 3;  // bytes between pixels, >= 3 (4 reads RGBA / BGRX and ignores the 4th byte)

  float* output = nullptr;       // one image: (3, height, width) when nchw, else (height, width, 3), contiguous
  int64_t height = 0;
  int64_t width = 0;
  bool nchw = true;
  bool swap_rb = false;          // output channel c reads source channel 2 - c (RGB <-> BGR)

  // Output channel c is (v / 255 - mean[c]) / std[c] for the resampled source value v, in output order.
  float mean[kChannels] = {0.f, 0.f, 0.f};
  float std[kChannels] = {1.f, 1.f, 1.f};
};

// Empty when `params` describe a valid call, otherwise what is wrong; every launcher checks it first.
std::string check_image_preprocess(const ImagePreprocessParams& params);

// Separable: per output row, the source rows it reads are blended vertically into a float row
// (vectorised), then resampled horizontally with precomputed taps. Output rows run on the CPU threads
// (OpenMP) when the frame is large enough to pay for them.
void image_preprocess_cpu(const ImagePreprocessParams& params);

#if FUSIONRT_WITH_CUDA
// One thread per output pixel computing its 2-D taps from the shared per-axis rules; asynchronous on
// `stream`. `src` and `output` are device (or mapped host) pointers.
void image_preprocess_cuda(const ImagePreprocessParams& params, cudaStream_t stream);
#endif

}  // namespace fusionrt
