// fusionrt._C.EngineRunner: the TensorRT engine runtime (csrc/tensorrt/runtime/EngineRunner.h) for
// Python. Inputs are numpy arrays, DLPack producers (torch, JAX, ...) or __cuda_array_interface__
// producers (CuPy, Numba), on the host or on the runner's GPU; outputs come back as numpy arrays.
// run_images makes the image input on the GPU from decoded uint8 frames (the image pre-processing op
// writing straight into the engine's input buffer).
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

#include "image_args.h"
#include "kernels/cuda/cuda_check.h"
#include "ops.h"
#include "ops/image_preprocess_op.h"
#include "tensor_view.h"
#include "tensorrt/runtime/DeviceScope.h"
#include "tensorrt/runtime/EngineRunner.h"
#include "tensorrt/runtime/StagedBuffer.h"

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

// A batch of decoded frames on its way into an engine's float32 image input, written on the GPU: the
// frames are copied once into one pinned (Jetson: mapped) staging buffer and cross to the device in
// one upload, as uint8; the pre-processing kernel then writes each into its slot of the engine's own
// input buffer, all on the runner's stream, so the float image never exists on the host and the engine
// reads it without another copy. An absent frame (None) leaves its slot zero, as the host path does.
class ImageBatch {
 public:
  // Views and checks the frames (GIL held): numpy-convertible, copied densely where they are not.
  ImageBatch(const py::list& images, const ImageNormalization& norm, int64_t height, int64_t width)
      : mNorm(norm) {
    const int64_t batch = static_cast<int64_t>(images.size());
    mShape = norm.nchw ? trt::Shape{batch, 3, height, width} : trt::Shape{batch, height, width, 3};
    for (size_t i = 0; i < images.size(); ++i) {
      if (images[i].is_none()) {
        mFrames.emplace_back();
        continue;
      }
      const std::string name = "images[" + std::to_string(i) + "]";
      // Dense, so each frame is one memcpy into the staging buffer (a strided one is copied anyway).
      py::object dense = py::array::ensure(images[i], py::array::c_style);
      if (!dense) throw py::type_error(name + " is " + std::string(py::str(py::type::of(images[i]))) +
                                       ", expected a uint8 (height, width, 3) array or None");
      Frame frame;
      frame.present = true;
      frame.view = view_array(dense, name, 0, frame.type);
      frame.bytes = static_cast<size_t>(trt::volume(frame.view.shape));
      mFrames.push_back(std::move(frame));
    }
  }

  const trt::Shape& shape() const { return mShape; }

  // Stages, uploads and pre-processes the frames into `input`'s buffer (GIL released, runner locked).
  // Every frame is checked (ImagePreprocessCall) before anything is copied or launched.
  void write(trt::EngineRunner& runner, trt::StagedBuffer& staging, const std::string& input) const {
    auto* const slots = static_cast<char*>(runner.inputBuffer(input, trt::TensorType::kFloat32, mShape));
    const size_t slot_bytes = trt::tensorBytes(trt::TensorType::kFloat32, trt::Shape(mShape.begin() + 1, mShape.end()));
    trt::DeviceScope scope(runner.device());
    size_t total = 0;
    for (const Frame& frame : mFrames) total += frame.bytes;
    staging.reserve(total);
    const Device gpu{DeviceKind::kCUDA, runner.device()};
    std::vector<ImagePreprocessCall> calls;
    size_t offset = 0;
    for (size_t i = 0; i < mFrames.size(); ++i) {
      const Frame& frame = mFrames[i];
      if (!frame.present) continue;
      ArrayArg source = frame.view;
      source.data = static_cast<char*>(staging.device()) + offset;
      source.device = gpu;
      calls.emplace_back(source, is_uint8(frame.type), slot(slots + i * slot_bytes, input, i, gpu), mNorm);
      offset += frame.bytes;
    }
    offset = 0;
    for (const Frame& frame : mFrames) {
      if (frame.bytes > 0) std::memcpy(static_cast<char*>(staging.host()) + offset, frame.view.data, frame.bytes);
      offset += frame.bytes;
    }
    cudaStream_t const stream = runner.stream();
    staging.upload(total, stream);
    size_t next = 0;
    for (size_t i = 0; i < mFrames.size(); ++i) {
      if (mFrames[i].present) {
        calls[next++].run(reinterpret_cast<intptr_t>(stream));
      } else {
        throw_on_cuda_error(cudaMemsetAsync(slots + i * slot_bytes, 0, slot_bytes, stream), "cudaMemsetAsync");
      }
    }
  }

 private:
  struct Frame {
    bool present = false;  // false: None, a zero slot
    ArrayView view;
    dlpack::DataType type{};
    size_t bytes = 0;
  };

  // Sample i's slot of the engine's input buffer, as the op's output.
  TensorArg slot(char* data, const std::string& input, size_t i, const Device& gpu) const {
    TensorArg out;
    out.name = "input '" + input + "'[" + std::to_string(i) + "]";
    out.data = data;
    out.device = gpu;
    out.dtype = DType::kFloat32;
    out.shape.assign(mShape.begin() + 1, mShape.end());
    out.strides = {out.shape[1] * out.shape[2], out.shape[2], 1};
    return out;
  }

  ImageNormalization mNorm;
  trt::Shape mShape;
  std::vector<Frame> mFrames;
};

// The runner and the lock that serialises its runs: one execution context runs one request at a time.
class PyEngineRunner {
 public:
  PyEngineRunner(const py::object& engine, int32_t device, bool cuda_graphs) {
    const std::vector<char> plan = read_plan(engine);
    py::gil_scoped_release release;  // deserialising a large engine takes a while
    mRunner = std::make_unique<trt::EngineRunner>(plan.data(), plan.size(), trt::EngineRunner::Options{device, cuda_graphs});
    mFrames = std::make_unique<trt::StagedBuffer>(mRunner->mapped());
  }

  const trt::EngineRunner& runner() const { return *mRunner; }

  py::dict run(const py::dict& feeds) {
    Inputs inputs = view_inputs(feeds, "");
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mMutex);
    return outputs_of(mRunner->run(inputs.tensors));
  }

  py::dict run_images(const py::dict& feeds, const std::string& input, const py::list& images,
                      const std::vector<float>& mean, const std::vector<float>& std, const std::string& layout,
                      const std::string& channel_order, int64_t height, int64_t width) {
    if (feeds.contains(input)) {
      throw py::value_error("feeds hold input '" + input + "', which run_images makes from `images`; leave it out");
    }
    const ImageBatch batch(images, image_normalization(mean, std, layout, channel_order), height, width);
    Inputs inputs = view_inputs(feeds, input);
    for (size_t i = 0; i < inputs.tensors.size(); ++i) {
      if (mRunner->inputs()[i].name == input) {
        inputs.tensors[i] = trt::InputTensor{nullptr, trt::InputSource::kBuffer, trt::TensorType::kFloat32, batch.shape()};
      }
    }
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mMutex);
    try {
      batch.write(*mRunner, *mFrames, input);
      return outputs_of(mRunner->run(inputs.tensors));
    } catch (...) {
      // Copies and kernels queued before the failure still read the staging buffer, which the next
      // call refills; let them finish first.
      cudaStreamSynchronize(mRunner->stream());
      throw;
    }
  }

 private:
  struct Inputs {
    std::vector<ArrayView> views;  // keep the producers' buffers alive until the run is over
    std::vector<trt::InputTensor> tensors;  // in the engine's input order
  };

  // Views `feeds` as the engine's inputs (GIL held); `made_here` names an input the caller provides
  // itself (its entry is left default), or is empty.
  Inputs view_inputs(const py::dict& feeds, const std::string& made_here) const {
    const auto& tensors = mRunner->inputs();
    for (const auto& item : feeds) {
      const std::string name = py::str(item.first);
      const bool known = std::any_of(tensors.begin(), tensors.end(), [&](const auto& t) { return t.name == name; });
      if (!known) throw py::value_error("unknown input '" + name + "'; the engine takes " + input_names());
    }
    if (!made_here.empty() && std::none_of(tensors.begin(), tensors.end(), [&](const auto& t) { return t.name == made_here; })) {
      throw py::value_error("unknown input '" + made_here + "'; the engine takes " + input_names());
    }
    Inputs inputs;
    for (const auto& tensor : tensors) {
      if (tensor.name == made_here) {
        inputs.tensors.emplace_back();
        continue;
      }
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
      const auto source = on_device ? trt::InputSource::kDevice : trt::InputSource::kHost;
      inputs.tensors.push_back(trt::InputTensor{view.data, source, tensor_type_of(type, view.name), view.shape});
      inputs.views.push_back(std::move(view));
    }
    return inputs;
  }

  // The outputs live in the runner's buffers until its next run: copied out under the lock (which the
  // caller holds, GIL released).
  py::dict outputs_of(const std::vector<trt::OutputTensor>& outputs) const {
    py::gil_scoped_acquire acquire;
    py::dict result;
    for (size_t j = 0; j < outputs.size(); ++j) {
      const std::string& name = mRunner->outputs()[j].name;
      py::array array(numpy_dtype_of(outputs[j].type, name), std::vector<py::ssize_t>(outputs[j].shape.begin(), outputs[j].shape.end()));
      if (outputs[j].bytes > 0) std::memcpy(array.mutable_data(), outputs[j].host, outputs[j].bytes);
      result[py::str(name)] = std::move(array);
    }
    return result;
  }

  std::string input_names() const {
    std::string names;
    for (const auto& tensor : mRunner->inputs()) names += (names.empty() ? "'" : ", '") + tensor.name + "'";
    return names;
  }

  std::unique_ptr<trt::EngineRunner> mRunner;
  std::unique_ptr<trt::StagedBuffer> mFrames;  // run_images' uint8 frames on their way to the GPU
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
      .def("run_images", &PyEngineRunner::run_images, py::arg("feeds"), py::arg("input"), py::arg("images"),
           py::arg("mean"), py::arg("std"), py::arg("layout") = "NCHW", py::arg("channel_order") = "RGB",
           py::arg("height"), py::arg("width"),
           "Runs the engine as `run` does, with float32 input `input` made on the GPU from `images`: decoded "
           "uint8 (height, width, 3 or 4) RGB(A) host arrays, or None for an absent sample (zeros). The frames "
           "cross to the GPU once, as uint8, and the image pre-processing kernel (_C.preprocess_image's "
           "arithmetic: resize to (height, width), mean / std, layout, channel_order) writes each into its slot "
           "of the engine's own input buffer on the runner's stream; the engine (or its CUDA graph) then reads "
           "it without another copy. `feeds` holds every other input. ValueError / TypeError for frames or "
           "feeds that do not fit (nothing runs), RuntimeError when a run fails.")
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
