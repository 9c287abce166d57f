// fusionrt._C.EngineRunner: the TensorRT engine runtime (csrc/tensorrt/runtime/EngineRunner.h) for
// Python. Inputs are numpy arrays, DLPack producers (torch, JAX, ...) or __cuda_array_interface__
// producers (CuPy, Numba), on the host or on the runner's GPU; outputs come back as numpy arrays.
// Only built with TensorRT (and compiled against every TensorRT header set by `make trt-check`).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ops.h"
#include "tensor_view.h"
#include "tensorrt/runtime/EngineRunner.h"

namespace py = pybind11;

namespace fusionrt::bindings {
namespace {

using trt::TensorType;

TensorType tensor_type_of(const dlpack::DataType& type, const std::string& name) {
  if (type.lanes == 1) {
    switch (type.code) {
      case dlpack::kFloat:
        if (type.bits == 32) return TensorType::kFloat32;
        if (type.bits == 16) return TensorType::kFloat16;
        break;
      case dlpack::kBfloat:
        if (type.bits == 16) return TensorType::kBFloat16;
        break;
      case dlpack::kInt:
        if (type.bits == 8) return TensorType::kInt8;
        if (type.bits == 32) return TensorType::kInt32;
        if (type.bits == 64) return TensorType::kInt64;
        break;
      case dlpack::kUInt:
        if (type.bits == 8) return TensorType::kUInt8;
        break;
      case dlpack::kBool:
        if (type.bits == 8) return TensorType::kBool;
        break;
      default: break;
    }
  }
  throw py::type_error(name + " has an element type (DLPack code " + std::to_string(type.code) + ", bits " +
                       std::to_string(type.bits) + ") that no TensorRT tensor has");
}

py::dtype numpy_dtype_of(TensorType type, const std::string& tensor) {
  switch (type) {
    case TensorType::kFloat32: return py::dtype("float32");
    case TensorType::kFloat16: return py::dtype("float16");
    case TensorType::kInt8: return py::dtype("int8");
    case TensorType::kInt32: return py::dtype("int32");
    case TensorType::kInt64: return py::dtype("int64");
    case TensorType::kUInt8: return py::dtype("uint8");
    case TensorType::kBool: return py::dtype("bool");
    default: break;
  }
  throw py::type_error("output '" + tensor + "' is " + trt::tensorTypeName(type) +
                       ", which numpy has no dtype for; cast it to float32 or float16 in the graph");
}

bool is_dense(const ArrayView& view) {
  int64_t expected = 1;
  for (size_t i = view.shape.size(); i-- > 0;) {
    if (view.shape[i] != 1 && view.strides[i] != expected) return false;
    expected *= view.shape[i];
  }
  return true;
}

std::vector<char> read_plan(const py::object& engine) {
  if (py::isinstance<py::bytes>(engine)) {
    const std::string bytes = engine.cast<std::string>();
    return {bytes.begin(), bytes.end()};
  }
  const std::string path = py::str(py::module_::import("os").attr("fspath")(engine));
  std::ifstream file(path, std::ios::binary);
  if (!file) throw py::value_error("cannot read the engine file " + path);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

py::dict tensor_dict(const trt::EngineTensor& tensor) {
  py::dict d(py::arg("name") = tensor.name, py::arg("dtype") = trt::tensorTypeName(tensor.type),
             py::arg("shape") = tensor.shape);
  if (!tensor.min.empty() || !tensor.max.empty()) {
    d["min"] = tensor.min;
    d["max"] = tensor.max;
  }
  return d;
}

// The runner and the lock that serialises its runs: one execution context runs one request at a time.
class PyEngineRunner {
 public:
  PyEngineRunner(const py::object& engine, int32_t device, bool cuda_graphs) {
    const std::vector<char> plan = read_plan(engine);
    py::gil_scoped_release release;  // deserialising a large engine takes a while
    mRunner = std::make_unique<trt::EngineRunner>(plan.data(), plan.size(), trt::EngineRunner::Options{device, cuda_graphs});
  }

  const trt::EngineRunner& runner() const { return *mRunner; }

  py::dict run(const py::dict& feeds) {
    const auto& tensors = mRunner->inputs();
    for (const auto& item : feeds) {
      const std::string name = py::str(item.first);
      const bool known = std::any_of(tensors.begin(), tensors.end(), [&](const auto& t) { return t.name == name; });
      if (!known) throw py::value_error("unknown input '" + name + "'; the engine takes " + input_names());
    }
    std::vector<ArrayView> views;  // keep the producers' buffers alive until the run is over
    std::vector<trt::InputTensor> inputs;
    for (const auto& tensor : tensors) {
      if (!feeds.contains(tensor.name)) {
        throw py::value_error("missing input '" + tensor.name + "'; the engine takes " + input_names());
      }
      py::object value = feeds[py::str(tensor.name)];
      // A strided numpy array is copied anyway on its way to the GPU; make the copy dense here.
      if (py::isinstance<py::array>(value)) value = py::array::ensure(value, py::array::c_style);
      dlpack::DataType type{};
      ArrayView view = view_array(value, "input '" + tensor.name + "'", reinterpret_cast<intptr_t>(mRunner->stream()), type);
      const bool on_device = view.device.kind == DeviceKind::kCUDA;
      if (on_device && view.device.index != mRunner->device()) {
        throw py::value_error(view.name + " is on " + view.device.str() + ", expected cpu or cuda:" +
                              std::to_string(mRunner->device()) + " (the engine's device)");
      }
      if (!is_dense(view)) {
        throw py::value_error(view.name + " is not contiguous; pass a contiguous tensor (e.g. x.contiguous())");
      }
      inputs.push_back(trt::InputTensor{view.data, on_device, tensor_type_of(type, view.name), view.shape});
      views.push_back(std::move(view));
    }

    py::dict result;
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mMutex);
    const std::vector<trt::OutputTensor> outputs = mRunner->run(inputs);
    // The outputs live in the runner's buffers until its next run: copy them out under the lock.
    py::gil_scoped_acquire acquire;
    for (size_t j = 0; j < outputs.size(); ++j) {
      const std::string& name = mRunner->outputs()[j].name;
      py::array array(numpy_dtype_of(outputs[j].type, name), std::vector<py::ssize_t>(outputs[j].shape.begin(), outputs[j].shape.end()));
      if (outputs[j].bytes > 0) std::memcpy(array.mutable_data(), outputs[j].host, outputs[j].bytes);
      result[py::str(name)] = std::move(array);
    }
    return result;
  }

 private:
  std::string input_names() const {
    std::string names;
    for (const auto& tensor : mRunner->inputs()) names += (names.empty() ? "'" : ", '") + tensor.name + "'";
    return names;
  }

  std::unique_ptr<trt::EngineRunner> mRunner;
  std::mutex mMutex;
};

}  // namespace

void bind_engine_runner(py::module_& m) {
  py::class_<PyEngineRunner>(m, "EngineRunner",
                             "A deserialised TensorRT engine with its execution context, stream and I/O buffers.")
      .def(py::init<const py::object&, int32_t, bool>(), py::arg("engine"), py::arg("device") = 0,
           py::arg("cuda_graphs") = false,
           "Deserialises `engine` (a path or the plan's bytes) on CUDA device `device`, fusionrt's plugins "
           "registered. With `cuda_graphs`, each new set of input shapes runs once uncaptured, is then captured, "
           "and replayed from then on (shapes whose capture fails keep running uncaptured). RuntimeError with "
           "TensorRT's message when the engine cannot be deserialised.")
      .def("run", &PyEngineRunner::run, py::arg("feeds"),
           "Runs the engine on {input name: array} (numpy, DLPack or __cuda_array_interface__; host or this "
           "device; dtypes exactly the engine's) and returns {output name: numpy array}. Releases the GIL while "
           "the GPU works; calls from several threads run one after another. ValueError / TypeError for feeds "
           "that do not fit the engine, RuntimeError with TensorRT's message when a run fails.")
      .def_property_readonly("inputs",
                             [](const PyEngineRunner& self) {
                               py::list list;
                               for (const auto& tensor : self.runner().inputs()) list.append(tensor_dict(tensor));
                               return list;
                             },
                             "[{name, dtype, shape, min, max}] of the engine's inputs, -1 marking dynamic dims.")
      .def_property_readonly("outputs",
                             [](const PyEngineRunner& self) {
                               py::list list;
                               for (const auto& tensor : self.runner().outputs()) list.append(tensor_dict(tensor));
                               return list;
                             },
                             "[{name, dtype, shape}] of the engine's outputs.")
      .def_property_readonly("device", [](const PyEngineRunner& self) { return self.runner().device(); })
      .def_property_readonly("mapped_memory", [](const PyEngineRunner& self) { return self.runner().mapped(); },
                             "True on an integrated GPU (Jetson): I/O in mapped host memory, no copies.")
      .def_property_readonly("cuda_graphs", [](const PyEngineRunner& self) { return self.runner().cudaGraphs(); });
}

}  // namespace fusionrt::bindings
