// Makes a CUDA device current for a scope: the thread calling a runner may have another one current,
// and allocations, copies and kernel launches go to the current device.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/cuda_check.h"

namespace fusionrt::trt {

class DeviceScope {
 public:
  explicit DeviceScope(int32_t device) {
    throw_on_cuda_error(cudaGetDevice(&mPrevious), "cudaGetDevice");
    if (device != mPrevious) throw_on_cuda_error(cudaSetDevice(device), "cudaSetDevice");
  }
  DeviceScope(DeviceScope const&) = delete;
  DeviceScope& operator=(DeviceScope const&) = delete;
  ~DeviceScope() { cudaSetDevice(mPrevious); }

 private:
  int mPrevious = 0;
};

}  // namespace fusionrt::trt
