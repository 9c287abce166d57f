#include "tensor_view.h"

#include <utility>

#if FUSIONRT_WITH_CUDA
#include "kernels/cuda/cuda_check.h"
#endif

namespace py = pybind11;

namespace fusionrt::bindings {
namespace {

DType numpy_dtype(const py::array& array, const std::string& name) {
  const py::dtype dtype = array.dtype();
  // Only native-order IEEE floats (every supported target, x86-64 and aarch64, is little-endian);
  // kind/itemsize avoid building dtype objects on every call.
  const char order = dtype.byteorder();
  const bool native = order == '=' || order == '|' || order == '<';
  if (dtype.kind() == 'f' && native) {
    switch (dtype.itemsize()) {
      case 2: return DType::kFloat16;
      case 4: return DType::kFloat32;
      case 8: return DType::kFloat64;
      default: break;
    }
  }
  throw py::type_error(name + " has dtype " + std::string(py::str(dtype)) +
                       ", expected float32, float16 or float64 (native byte order)");
}

ArrayView view_numpy(const py::array& array, const std::string& name) {
  ArrayView view;
  view.name = name;
  view.writeable = array.writeable();
  view.data = const_cast<void*>(array.data());
  const int64_t itemsize = array.itemsize();
  for (py::ssize_t i = 0; i < array.ndim(); ++i) {
    view.shape.push_back(array.shape(i));
    // numpy strides are in bytes and need not be multiples of the item size.
    if (array.strides(i) % itemsize != 0) {
      throw py::value_error(name + " has a byte stride of " + std::to_string(array.strides(i)) +
                            " along dim " + std::to_string(i) + ", not a multiple of its item size");
    }
    view.strides.push_back(array.strides(i) / itemsize);
  }
  view.owner = array;
  return view;
}

DType dlpack_dtype(const dlpack::DataType& type, const std::string& name) {
  if (type.lanes == 1) {
    if (type.code == dlpack::kFloat && type.bits == 32) return DType::kFloat32;
    if (type.code == dlpack::kFloat && type.bits == 16) return DType::kFloat16;
    if (type.code == dlpack::kFloat && type.bits == 64) return DType::kFloat64;
    if (type.code == dlpack::kBfloat && type.bits == 16) return DType::kBFloat16;
  }
  throw py::type_error(name + " has DLPack dtype (code " + std::to_string(type.code) + ", bits " +
                       std::to_string(type.bits) + ", lanes " + std::to_string(type.lanes) +
                       "), expected float32, float16, bfloat16 or float64");
}

// Also reports the producer's element type, for the caller to accept or refuse.
ArrayView view_dlpack(py::handle obj, const std::string& name, intptr_t cuda_stream, dlpack::DataType& type) {
  const auto device = obj.attr("__dlpack_device__")().cast<std::pair<int, int>>();
  py::object capsule;
  if (device.first == dlpack::kCUDA || device.first == dlpack::kCUDAManaged) {
    // DLPack reserves 0; 1 is the legacy default stream.
    capsule = obj.attr("__dlpack__")(py::arg("stream") = cuda_stream == 0 ? 1 : cuda_stream);
  } else {
    capsule = obj.attr("__dlpack__")();
  }
  if (!PyCapsule_IsValid(capsule.ptr(), "dltensor")) {
    throw py::type_error(name + ".__dlpack__() did not return a 'dltensor' capsule");
  }
  const auto* managed = static_cast<dlpack::ManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
  const dlpack::Tensor& t = managed->dl_tensor;

  ArrayView view;
  view.name = name;
  type = t.dtype;
  switch (t.device.device_type) {
    case dlpack::kCPU:
    case dlpack::kCUDAHost: view.device = {DeviceKind::kCPU, 0}; break;
    case dlpack::kCUDA:
    case dlpack::kCUDAManaged: view.device = {DeviceKind::kCUDA, t.device.device_id}; break;
    default:
      throw py::value_error(name + " lives on DLPack device type " + std::to_string(t.device.device_type) +
                            ", expected CPU or CUDA memory");
  }
  view.data = static_cast<char*>(t.data) + t.byte_offset;
  view.shape.assign(t.shape, t.shape + t.ndim);
  if (t.strides) {
    view.strides.assign(t.strides, t.strides + t.ndim);
  } else {
    view.strides.resize(t.ndim);
    int64_t stride = 1;
    for (int i = t.ndim - 1; i >= 0; --i) {
      view.strides[i] = stride;
      stride *= t.shape[i];
    }
  }
  // An unconsumed capsule frees the tensor when it is collected, so holding it keeps the data alive.
  view.owner = capsule;
  return view;
}

// numpy's element type in DLPack's terms (kind + item size), for view_array.
dlpack::DataType numpy_element_type(const py::dtype& dtype, const std::string& name) {
  const char order = dtype.byteorder();
  const auto bits = static_cast<uint8_t>(dtype.itemsize() * 8);
  if (order == '=' || order == '|' || order == '<') {
    switch (dtype.kind()) {
      case 'f': return {dlpack::kFloat, bits, 1};
      case 'i': return {dlpack::kInt, bits, 1};
      case 'u': return {dlpack::kUInt, bits, 1};
      case 'b': return {dlpack::kBool, bits, 1};
      default: break;
    }
  }
  throw py::type_error(name + " has dtype " + std::string(py::str(dtype)) +
                       ", expected a native-order float, int, uint or bool dtype");
}

// A __cuda_array_interface__ (version 2 or 3) producer: always CUDA memory.
ArrayView view_cuda_array_interface(py::handle obj, const std::string& name, intptr_t cuda_stream,
                                    dlpack::DataType& type) {
  const auto interface = obj.attr("__cuda_array_interface__").cast<py::dict>();
  ArrayView view;
  view.name = name;
  // typestr is numpy's array-interface spelling ("<f4", "|b1"), which numpy parses for us.
  type = numpy_element_type(py::dtype(interface["typestr"].cast<std::string>()), name);
  const auto data = interface["data"].cast<std::pair<uintptr_t, bool>>();
  view.data = reinterpret_cast<void*>(data.first);
  view.writeable = !data.second;
  view.shape = interface["shape"].cast<std::vector<int64_t>>();
  const int64_t itemsize = type.bits / 8;
  if (interface.contains("strides") && !interface["strides"].is_none()) {
    for (const int64_t stride : interface["strides"].cast<std::vector<int64_t>>()) {
      if (stride % itemsize != 0) {
        throw py::value_error(name + " has a byte stride of " + std::to_string(stride) + ", not a multiple of its item size");
      }
      view.strides.push_back(stride / itemsize);
    }
  } else {
    view.strides.resize(view.shape.size());
    int64_t stride = 1;
    for (size_t i = view.shape.size(); i-- > 0;) {
      view.strides[i] = stride;
      stride *= view.shape[i];
    }
  }
#if FUSIONRT_WITH_CUDA
  cudaPointerAttributes attributes{};
  if (view.data != nullptr) {
    throw_on_cuda_error(cudaPointerGetAttributes(&attributes, view.data), (name + ": cudaPointerGetAttributes").c_str());
  }
  view.device = {DeviceKind::kCUDA, attributes.device};
  // Version 3: the producer's work on `stream` must finish before the consumer reads (None: nothing pending).
  if (interface.contains("stream") && !interface["stream"].is_none()) {
    const auto producer = interface["stream"].cast<intptr_t>();
    if (producer != cuda_stream) {
      // 1 and 2 are the interface's names for the legacy and per-thread default streams.
      const auto to_stream = [](intptr_t s) {
        return s == 1 ? cudaStreamLegacy : s == 2 ? cudaStreamPerThread : reinterpret_cast<cudaStream_t>(s);
      };
      cudaEvent_t ready = nullptr;
      throw_on_cuda_error(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreateWithFlags");
      cudaError_t status = cudaEventRecord(ready, to_stream(producer));
      if (status == cudaSuccess) status = cudaStreamWaitEvent(reinterpret_cast<cudaStream_t>(cuda_stream), ready, 0);
      cudaEventDestroy(ready);
      throw_on_cuda_error(status, (name + ": ordering its producer's stream before ours").c_str());
    }
  }
#else
  (void)cuda_stream;
  throw py::value_error(name + " is CUDA memory (__cuda_array_interface__), but this fusionrt was built without CUDA");
#endif
  view.owner = py::reinterpret_borrow<py::object>(obj);
  return view;
}

bool is_dlpack(py::handle obj) { return py::hasattr(obj, "__dlpack__") && py::hasattr(obj, "__dlpack_device__"); }

// Moves an element-type-agnostic view into a tensor view, whose dtype the caller sets.
void adopt(TensorView& tensor, ArrayView&& array) {
  static_cast<ArrayArg&>(tensor) = std::move(static_cast<ArrayArg&>(array));
  tensor.owner = std::move(array.owner);
}

[[noreturn]] void throw_not_an_array(py::handle obj, const std::string& name) {
  throw py::type_error(name + " is a " + std::string(py::str(py::type::of(obj).attr("__name__"))) +
                       ", expected a numpy array or a DLPack tensor (torch.Tensor, cupy.ndarray, ...)");
}

}  // namespace

TensorView view_tensor(py::handle obj, const std::string& name, intptr_t cuda_stream) {
  TensorView view;
  if (py::isinstance<py::array>(obj)) {
    const auto array = py::reinterpret_borrow<py::array>(obj);
    view.dtype = numpy_dtype(array, name);
    adopt(view, view_numpy(array, name));
  } else if (is_dlpack(obj)) {
    dlpack::DataType type{};
    adopt(view, view_dlpack(obj, name, cuda_stream, type));
    view.dtype = dlpack_dtype(type, name);
  } else {
    throw_not_an_array(obj, name);
  }
  return view;
}

ArrayView view_mask(py::handle obj, const std::string& name, intptr_t cuda_stream) {
  if (py::isinstance<py::array>(obj)) {
    const auto array = py::reinterpret_borrow<py::array>(obj);
    if (array.dtype().kind() != 'b') {
      throw py::type_error(name + " has dtype " + std::string(py::str(array.dtype())) + ", expected bool");
    }
    return view_numpy(array, name);
  }
  if (!is_dlpack(obj)) throw_not_an_array(obj, name);
  dlpack::DataType type{};
  ArrayView view = view_dlpack(obj, name, cuda_stream, type);
  if (type.code != dlpack::kBool || type.bits != 8 || type.lanes != 1) {
    throw py::type_error(name + " has DLPack dtype (code " + std::to_string(type.code) + ", bits " +
                         std::to_string(type.bits) + ", lanes " + std::to_string(type.lanes) + "), expected bool");
  }
  return view;
}

ArrayView view_array(py::handle obj, const std::string& name, intptr_t cuda_stream, dlpack::DataType& type) {
  if (py::isinstance<py::array>(obj)) {
    const auto array = py::reinterpret_borrow<py::array>(obj);
    type = numpy_element_type(array.dtype(), name);
    return view_numpy(array, name);
  }
  if (is_dlpack(obj)) return view_dlpack(obj, name, cuda_stream, type);
  if (py::hasattr(obj, "__cuda_array_interface__")) return view_cuda_array_interface(obj, name, cuda_stream, type);
  throw_not_an_array(obj, name);
}

py::array new_numpy_array(DType dtype, const std::vector<int64_t>& shape) {
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  switch (dtype) {
    case DType::kFloat32: return py::array(py::dtype::of<float>(), dims);
    case DType::kFloat64: return py::array(py::dtype::of<double>(), dims);
    case DType::kFloat16: return py::array(py::dtype("float16"), dims);
    case DType::kBFloat16: break;
  }
  throw py::type_error(std::string("numpy has no ") + dtype_name(dtype) + " arrays; pass out= to receive the result");
}

}  // namespace fusionrt::bindings
