#include "tensorrt/runtime/StagedBuffer.h"

#include <utility>

#include "kernels/cuda/cuda_check.h"
#include "tensorrt/runtime/ShapeRules.h"

namespace fusionrt::trt {

StagedBuffer::StagedBuffer(StagedBuffer&& other) noexcept
    : mMapped(other.mMapped),
      mCapacity(std::exchange(other.mCapacity, 0)),
      mHost(std::exchange(other.mHost, nullptr)),
      mDevice(std::exchange(other.mDevice, nullptr)) {}

StagedBuffer::~StagedBuffer() { release(); }

void StagedBuffer::release() noexcept {
  // Frees are synchronous, so nothing still queued can touch the memory; errors here could only be
  // a context already torn down at exit, where there is nothing left to free.
  if (mHost != nullptr) cudaFreeHost(mHost);
  if (!mMapped && mDevice != nullptr) cudaFree(mDevice);
  mHost = nullptr;
  mDevice = nullptr;
  mCapacity = 0;
}

bool StagedBuffer::reserve(size_t bytes) {
  size_t const capacity = grownCapacity(mCapacity, bytes);
  if (capacity == mCapacity) return false;
  release();
  if (mMapped) {
    throw_on_cuda_error(cudaHostAlloc(&mHost, capacity, cudaHostAllocMapped), "cudaHostAlloc(mapped)");
    throw_on_cuda_error(cudaHostGetDevicePointer(&mDevice, mHost, 0), "cudaHostGetDevicePointer");
  } else {
    throw_on_cuda_error(cudaMallocHost(&mHost, capacity), "cudaMallocHost");
    throw_on_cuda_error(cudaMalloc(&mDevice, capacity), "cudaMalloc");
  }
  mCapacity = capacity;
  return true;
}

void StagedBuffer::upload(size_t bytes, cudaStream_t stream) const {
  if (mMapped || bytes == 0) return;
  throw_on_cuda_error(cudaMemcpyAsync(mDevice, mHost, bytes, cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync(H2D)");
}

void StagedBuffer::download(size_t bytes, cudaStream_t stream) const {
  if (mMapped || bytes == 0) return;
  throw_on_cuda_error(cudaMemcpyAsync(mHost, mDevice, bytes, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync(D2H)");
}

}  // namespace fusionrt::trt
