// One engine I/O tensor's memory: a device buffer the engine reads or writes, and the host memory
// that data crosses to and from Python through.
//
// On a discrete GPU that is cudaMalloc'd device memory plus a pinned (page-locked) host staging
// buffer, so copies are DMA transfers that overlap with nothing else on the stream. On an integrated
// GPU (Jetson), where host and device share DRAM, it is one mapped host allocation whose device
// alias the engine binds directly: no copy at all between host staging and the engine.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace fusionrt::trt {

class StagedBuffer {
 public:
  explicit StagedBuffer(bool mapped) noexcept : mMapped(mapped) {}
  StagedBuffer(StagedBuffer&& other) noexcept;
  StagedBuffer(StagedBuffer const&) = delete;
  StagedBuffer& operator=(StagedBuffer const&) = delete;
  StagedBuffer& operator=(StagedBuffer&&) = delete;
  ~StagedBuffer();

  // Makes room for `bytes` (growing by grownCapacity, never shrinking). True when the device address
  // changed, which invalidates CUDA graphs captured with the old one. Throws on a CUDA error.
  bool reserve(size_t bytes);

  void* host() const noexcept { return mHost; }
  void* device() const noexcept { return mDevice; }
  bool mapped() const noexcept { return mMapped; }

  // Host staging -> device, and back; no-ops when mapped, since both are the same memory.
  void upload(size_t bytes, cudaStream_t stream) const;
  void download(size_t bytes, cudaStream_t stream) const;

 private:
  void release() noexcept;

  bool mMapped;
  size_t mCapacity = 0;
  void* mHost = nullptr;
  void* mDevice = nullptr;
};

}  // namespace fusionrt::trt
