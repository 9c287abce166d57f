#include "image_preprocess_op.h"

#include <cmath>

namespace fusionrt {

ImagePreprocessCall::ImagePreprocessCall(const ArrayArg& image, bool image_is_uint8, const TensorArg& out,
                                         const ImageNormalization& norm) {
  if (!image_is_uint8) throw TypeError(image.name + " must be uint8 (a decoded 8-bit image)");
  image.expect_ndim(3, "(height, width, channels)");
  const int64_t channels = image.dim(2);
  if (channels != 3 && channels != 4) {
    throw ValueError(image.name + " has " + std::to_string(channels) + " channels, expected 3 (RGB) or 4 (RGBA, "
                     "the 4th is ignored)");
  }
  // Strides of an empty array are arbitrary (numpy reports 0): say what is really wrong.
  if (image.dim(0) == 0 || image.dim(1) == 0) throw ValueError(image.name + " has shape " + shape_str(image.shape) + ": it has no pixels");
  if (image.strides[2] != 1) {
    throw ValueError(image.name + " has channel stride " + std::to_string(image.strides[2]) + ", expected 1");
  }
  if ((image.dim(0) > 1 && image.strides[0] < 0) || (image.dim(1) > 1 && image.strides[1] < channels)) {
    throw ValueError(image.name + " has strides " + shape_str(image.strides) + ", expected non-negative rows and "
                     "non-overlapping pixels");
  }
  out.expect_ndim(3, norm.nchw ? "(3, height, width) for layout NCHW" : "(height, width, 3) for layout NHWC");
  if (out.dtype != DType::kFloat32) throw TypeError(out.name + " is " + std::string(dtype_name(out.dtype)) + ", expected float32");
  const int64_t out_channels = norm.nchw ? out.dim(0) : out.dim(2);
  if (out_channels != 3) {
    throw ValueError(out.name + " has shape " + shape_str(out.shape) + ", expected " +
                     (norm.nchw ? "(3, height, width) for layout NCHW" : "(height, width, 3) for layout NHWC"));
  }
  // The kernel writes planes and rows back to back.
  if (out.strides[2] != 1 || out.strides[1] != out.dim(2) || out.strides[0] != out.dim(1) * out.dim(2)) {
    throw ValueError(out.name + " has strides " + shape_str(out.strides) + ", expected a contiguous image");
  }
  if (!out.writeable) throw ValueError(out.name + " is read-only");
  expect_same_device(out, image);

  params_.src = static_cast<const uint8_t*>(image.data);
  params_.src_height = image.dim(0);
  params_.src_width = image.dim(1);
  params_.src_row_stride = image.strides[0];
  params_.src_pixel_stride = image.strides[1];
  // A one-row (one-column) image may report any row (pixel) stride; nothing reads past it.
  if (params_.src_width == 1) params_.src_pixel_stride = channels;
  if (params_.src_height == 1) params_.src_row_stride = params_.src_width * params_.src_pixel_stride;
  params_.output = static_cast<float*>(out.data);
  params_.height = norm.nchw ? out.dim(1) : out.dim(0);
  params_.width = norm.nchw ? out.dim(2) : out.dim(1);
  params_.nchw = norm.nchw;
  params_.swap_rb = norm.swap_rb;
  for (int c = 0; c < 3; ++c) {
    params_.mean[c] = norm.mean[c];
    params_.std[c] = norm.std[c];
  }
  const std::string error = check_image_preprocess(params_);
  if (!error.empty()) throw ValueError(error);
  device_ = image.device;
  name_ = image.name;
}

void ImagePreprocessCall::run(intptr_t cuda_stream) const {
  if (device_.is_cpu()) return image_preprocess_cpu(params_);
#if FUSIONRT_WITH_CUDA
  image_preprocess_cuda(params_, reinterpret_cast<cudaStream_t>(cuda_stream));
#else
  (void)cuda_stream;
  ArrayArg where;
  where.name = name_;
  where.device = device_;
  throw_built_without_cuda(where);
#endif
}

}  // namespace fusionrt
