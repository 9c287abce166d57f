// The Python-side image pre-processing arguments (mean, std, layout, channel order; the source's
// element type) as the op takes them: one reading for every binding that pre-processes images
// (_C.preprocess_image and the engine runner's run_images).
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "dlpack_abi.h"
#include "ops/image_preprocess_op.h"

namespace fusionrt::bindings {

inline void take_three(const std::vector<float>& values, const char* what, float* into) {
  if (values.size() != 3) {
    throw pybind11::value_error(std::string(what) + " has " + std::to_string(values.size()) +
                                " values, expected 3 (one per channel)");
  }
  for (int c = 0; c < 3; ++c) into[c] = values[c];
}

// ValueError naming the setting that is wrong and what it may be.
inline ImageNormalization image_normalization(const std::vector<float>& mean, const std::vector<float>& std,
                                              const std::string& layout, const std::string& channel_order) {
  ImageNormalization norm{};
  take_three(mean, "mean", norm.mean);
  take_three(std, "std", norm.std);
  if (layout != "NCHW" && layout != "NHWC") throw pybind11::value_error("layout is '" + layout + "', expected 'NCHW' or 'NHWC'");
  if (channel_order != "RGB" && channel_order != "BGR") {
    throw pybind11::value_error("channel_order is '" + channel_order + "', expected 'RGB' or 'BGR'");
  }
  norm.nchw = layout == "NCHW";
  norm.swap_rb = channel_order == "BGR";
  return norm;
}

// Whether a viewed source holds 8-bit unsigned samples, which is what ImagePreprocessCall asks.
inline bool is_uint8(const dlpack::DataType& type) { return type.code == dlpack::kUInt && type.bits == 8 && type.lanes == 1; }

}  // namespace fusionrt::bindings
