// The engine runtime's TensorRT-free rules (csrc/tensorrt/runtime/TensorTypes.h, ShapeRules.h) as
// fusionrt._C.engine_rules, so they are unit-tested on machines without TensorRT or a GPU.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "ops.h"
#include "tensorrt/runtime/ShapeRules.h"
#include "tensorrt/runtime/TensorTypes.h"

namespace py = pybind11;

namespace fusionrt::bindings {
namespace {

using trt::Shape;
using trt::TensorType;

TensorType tensor_type_named(const std::string& name) {
  std::string known;
  for (int32_t value = 0; value < trt::kNbTensorTypes; ++value) {
    const TensorType type = trt::tensorTypeFromInt(value);
    if (name == trt::tensorTypeName(type)) return type;
    known += (value ? ", " : "") + std::string(trt::tensorTypeName(type));
  }
  throw py::value_error("unknown tensor type '" + name + "', expected one of " + known);
}

}  // namespace

void bind_engine_rules(py::module_& root) {
  py::module_ m = root.def_submodule("engine_rules", "The TensorRT engine runtime's shape and buffer rules");
  m.attr("buffer_alignment") = trt::kBufferAlignment;
  m.def(
      "tensor_types",
      [] {
        std::vector<std::string> names;
        for (int32_t value = 0; value < trt::kNbTensorTypes; ++value) {
          names.emplace_back(trt::tensorTypeName(trt::tensorTypeFromInt(value)));
        }
        return names;
      },
      "Tensor type names, indexed by their nvinfer1::DataType value.");
  m.def(
      "tensor_type_name", [](int32_t value) { return trt::tensorTypeName(trt::tensorTypeFromInt(value)); },
      py::arg("value"), "Name of the nvinfer1::DataType `value`; ValueError for a value unknown to this build.");
  m.def(
      "tensor_bytes", [](const std::string& type, const Shape& shape) { return trt::tensorBytes(tensor_type_named(type), shape); },
      py::arg("type"), py::arg("shape"), "Bytes a dense tensor of `type` and `shape` occupies (sub-byte types packed).");
  m.def("shape_signature", &trt::shapeSignature, py::arg("shapes"),
        "The key a CUDA graph is captured under for these input shapes.");
  m.def("check_profile_shape", &trt::checkProfileShape, py::arg("tensor"), py::arg("shape"), py::arg("min"),
        py::arg("max"), "ValueError unless `shape` lies within an optimisation profile's [min, max].");
  m.def("check_resolved_output", &trt::checkResolvedOutput, py::arg("tensor"), py::arg("shape"),
        "ValueError when an output shape still has an unresolved (-1) dim.");
  m.def("grown_capacity", &trt::grownCapacity, py::arg("current"), py::arg("needed"),
        "The capacity in bytes a buffer of `current` bytes grows to so it holds `needed`.");
}

}  // namespace fusionrt::bindings
