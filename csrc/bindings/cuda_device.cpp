// fusionrt._C.cuda_device_properties: the facts about a GPU that engines depend on (name, compute
// capability, multiprocessor count and memory: every Jetson Orin module is named "Orin") and that the
// runtime's memory strategy depends on (integrated), without torch.
#include <pybind11/pybind11.h>

#include <string>

#include "ops.h"

#if FUSIONRT_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace py = pybind11;

namespace fusionrt::bindings {

void bind_cuda_device(py::module_& m) {
  m.def(
      "cuda_device_properties",
      [](int device) {
#if FUSIONRT_WITH_CUDA
        cudaDeviceProp properties{};
        const cudaError_t status = cudaGetDeviceProperties(&properties, device);
        if (status != cudaSuccess) {
          throw py::value_error("CUDA device " + std::to_string(device) + " is not usable: " +
                                cudaGetErrorString(status));
        }
        return py::dict(py::arg("name") = std::string(properties.name),
                        py::arg("compute_capability") = py::make_tuple(properties.major, properties.minor),
                        py::arg("multiprocessor_count") = properties.multiProcessorCount,
                        py::arg("integrated") = properties.integrated != 0,
                        py::arg("total_memory") = properties.totalGlobalMem);
#else
        throw py::value_error("this fusionrt was built without CUDA; CUDA device " + std::to_string(device) +
                              " cannot be queried");
#endif
      },
      py::arg("device") = 0,
      "{name, compute_capability: (major, minor), multiprocessor_count, integrated, total_memory (bytes)} of a "
      "CUDA device; ValueError when it is not usable.");
}

}  // namespace fusionrt::bindings
