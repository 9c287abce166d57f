// Python entry point of image pre-processing: views the decoded uint8 image and the float32 output
// slot (numpy, DLPack or __cuda_array_interface__), and runs the op (ops/image_preprocess_op.h checks
// them).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "ops.h"
#include "ops/image_preprocess_op.h"
#include "tensor_view.h"

namespace py = pybind11;

namespace fusionrt::bindings {
namespace {

void take_three(const std::vector<float>& values, const char* what, float* into) {
  if (values.size() != 3) {
    throw py::value_error(std::string(what) + " has " + std::to_string(values.size()) + " values, expected 3 (one per channel)");
  }
  for (int c = 0; c < 3; ++c) into[c] = values[c];
}

py::object preprocess_image(const py::object& image, const py::object& out, const std::vector<float>& mean,
                            const std::vector<float>& std, const std::string& layout, const std::string& channel_order,
                            intptr_t stream) {
  ImageNormalization norm{};
  take_three(mean, "mean", norm.mean);
  take_three(std, "std", norm.std);
  if (layout != "NCHW" && layout != "NHWC") throw py::value_error("layout is '" + layout + "', expected 'NCHW' or 'NHWC'");
  if (channel_order != "RGB" && channel_order != "BGR") {
    throw py::value_error("channel_order is '" + channel_order + "', expected 'RGB' or 'BGR'");
  }
  norm.nchw = layout == "NCHW";
  norm.swap_rb = channel_order == "BGR";
  dlpack::DataType type{};
  const ArrayView source = view_array(image, "image", stream, type);
  const TensorView output = view_tensor(out, "out", stream);
  const bool is_uint8 = type.code == dlpack::kUInt && type.bits == 8 && type.lanes == 1;
  ImagePreprocessCall call(source, is_uint8, output, norm);
  {
    py::gil_scoped_release release;
    call.run(stream);
  }
  return out;
}

}  // namespace

void bind_image_preprocess(py::module_& m) {
  m.def("preprocess_image", &preprocess_image, py::arg("image"), py::arg("out"), py::arg("mean"), py::arg("std"),
        py::arg("layout") = "NCHW", py::arg("channel_order") = "RGB", py::arg("stream") = 0,
        R"doc(Resizes, converts and normalises one decoded RGB image into `out`, in one pass.

image: uint8 (height, width, 3 or 4) RGB(A) with contiguous channels, any row / pixel strides; a
    numpy array, a DLPack tensor or a __cuda_array_interface__ array (CUDA: a frame uploaded once as uint8).
out: float32 slot on the image's device, contiguous, (3, h, w) for layout NCHW or (h, w, 3) for NHWC,
    e.g. batch[i] of the graph's input, or a view of a TensorRT engine's bound input buffer; its
    (h, w) is the resize target. Bilinear with PIL's / torchvision's antialiasing (resize(antialias=True)).
mean, std: 3 values each in the output's channel order; out = (v / 255 - mean) / std.
channel_order: "BGR" swaps R and B of the RGB source.
stream: cudaStream_t as an int for CUDA arrays (asynchronous on it); CPU calls return when done.
Returns out.)doc");
}

}  // namespace fusionrt::bindings
