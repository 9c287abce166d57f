// Image pre-processing as the front ends call it: check a decoded 8-bit image and the float output
// slot it is written to (the output's shape gives the resize target), then run the CPU or CUDA kernel
// on their device. The rules live here: source (height, width, 3 or 4) uint8 with contiguous channels
// and any row / pixel strides (crops, padded rows, RGBA); output float32, (3, h, w) for NCHW or
// (h, w, 3) for NHWC, contiguous; 1 to 65536 pixels per side; mean / std of 3 finite values, std != 0.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/image_preprocess.h"
#include "op_args.h"

namespace fusionrt {

struct ImageNormalization {
  float mean[3];
  float std[3];
  bool nchw = true;     // layout "NCHW", else "NHWC"
  bool swap_rb = false; // channel order "BGR" from an RGB source
};

class ImagePreprocessCall {
 public:
  // `image_is_uint8` is the front end's reading of the source's element type (ArrayArg carries none);
  // `out` must be float32. Throws ValueError / TypeError naming what is wrong.
  ImagePreprocessCall(const ArrayArg& image, bool image_is_uint8, const TensorArg& out, const ImageNormalization& norm);

  // On the CPU it returns when done; on CUDA it is asynchronous on `cuda_stream`.
  void run(intptr_t cuda_stream) const;

 private:
  ImagePreprocessParams params_;
  Device device_;
  std::string name_;
};

}  // namespace fusionrt
