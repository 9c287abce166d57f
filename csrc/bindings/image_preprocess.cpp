// Python entry point of image pre-processing: views the decoded uint8 image and the float32 output
// slot (numpy, DLPack or __cuda_array_interface__), and runs the op (ops/image_preprocess_op.h checks
// them).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "image_args.h"
#include "ops.h"
#include "ops/image_preprocess_op.h"
#include "tensor_view.h"

namespace py = pybind11;

namespace fusionrt::bindings {
namespace {

py::object preprocess_image(const py::object& image, const py::object& out, const std::vector<float>& mean,
                            const std::vector<float>& std, const std::string& layout, const std::string& channel_order,
                            intptr_t stream) {
  const ImageNormalization norm = image_normalization(mean, std, layout, channel_order);
  dlpack::DataType type{};
  const ArrayView source = view_array(image, "image", stream, type);
  const TensorView output = view_tensor(out, "out", stream);
  ImagePreprocessCall call(source, is_uint8(type), output, norm);
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
