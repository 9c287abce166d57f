// fusionrt._C: the compiled half of the package. Build facts and the op entry points.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <sstream>
#include <string>
#include <vector>

#include "ops.h"
#include "ops/op_args.h"

#if FUSIONRT_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace py = pybind11;

namespace {

#define FUSIONRT_STRINGIFY_IMPL(x) #x
#define FUSIONRT_STRINGIFY(x) FUSIONRT_STRINGIFY_IMPL(x)

std::string compiler() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "gcc " __VERSION__;
#elif defined(_MSC_VER)
  return "msvc " FUSIONRT_STRINGIFY(_MSC_VER);
#else
  return "unknown";
#endif
}

py::dict build_info() {
  py::dict info;
  info["version"] = FUSIONRT_VERSION;
  info["compiler"] = compiler();
#if defined(_OPENMP)
  info["openmp"] = true;
#else
  info["openmp"] = false;
#endif
#if FUSIONRT_WITH_CUDA
  info["cuda"] = true;
  info["cuda_version"] = FUSIONRT_CUDA_VERSION;
  std::vector<int> architectures;
  std::stringstream list(FUSIONRT_CUDA_ARCHITECTURES);
  // Items as CMake spells them: "87", "90-real", "110a-virtual"; the leading number is the SM. Keywords
  // CMake resolves itself ("native", "all") carry no number and are left out rather than failing import.
  for (std::string item; std::getline(list, item, ',');) {
    const auto digits = item.find_first_not_of("0123456789");
    if (digits != 0) architectures.push_back(std::stoi(item.substr(0, digits)));
  }
  info["cuda_architectures"] = architectures;
#else
  info["cuda"] = false;
  info["cuda_version"] = py::none();
  info["cuda_architectures"] = py::none();
#endif
#if FUSIONRT_WITH_TENSORRT
  info["tensorrt"] = FUSIONRT_TENSORRT_VERSION;
#else
  info["tensorrt"] = py::none();
#endif
#if defined(FUSIONRT_TORCH_VERSION)
  // The torch the ops' C++ kernels (libfusionrt_torch) were built against; they load only under it.
  info["torch"] = FUSIONRT_TORCH_VERSION;
  info["torch_cuda_kernels"] = static_cast<bool>(FUSIONRT_TORCH_CUDA_KERNELS);
#else
  info["torch"] = py::none();
  info["torch_cuda_kernels"] = false;
#endif
  return info;
}

// True only when a driver and at least one device answer; the static runtime makes this safe to ask
// on machines with no driver at all.
bool cuda_available() {
#if FUSIONRT_WITH_CUDA
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fusionrt compiled kernels and build facts";
  // fusionrt::ValueError is a std::invalid_argument, which pybind11 raises as ValueError already.
  py::register_exception_translator([](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const fusionrt::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });
  m.def("build_info", &build_info, "What this build of fusionrt was compiled with.");
  m.def("cuda_available", &cuda_available, "Whether a CUDA driver and device are usable now.");
  fusionrt::bindings::bind_concat_layernorm(m);
  fusionrt::bindings::bind_attention(m);
  fusionrt::bindings::bind_image_preprocess(m);
  fusionrt::bindings::bind_numeric_testing(m);
  fusionrt::bindings::bind_op_contracts(m);
  fusionrt::bindings::bind_plugin_fields(m);
  fusionrt::bindings::bind_engine_rules(m);
  fusionrt::bindings::bind_cuda_device(m);
#if FUSIONRT_WITH_TENSORRT
  fusionrt::bindings::bind_engine_runner(m);
#endif
}
