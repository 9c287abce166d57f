// CUDA graphs of an execution context's enqueueV3, one per input-shape signature (ShapeRules.h), so
// a repeated request replays the whole engine with one cudaGraphLaunch instead of launching every
// kernel from the CPU: what makes batch-1 latency on Jetson's slower cores small.
//
// A graph bakes in the tensor addresses and shapes bound when it was captured, so the owner clears
// the cache whenever an I/O buffer moves. It covers the engine's enqueue alone: what the owner queues
// on the stream before the replay (input uploads, image pre-processing into an input buffer) runs
// eagerly, in stream order, and may differ per call; only the addresses must stay the same. Some engines cannot be captured (e.g. ones that
// synchronise inside enqueue); a signature whose capture failed is remembered and runs uncaptured.
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <map>
#include <string>

namespace fusionrt::trt {

class CudaGraphCache {
 public:
  CudaGraphCache() = default;
  CudaGraphCache(CudaGraphCache const&) = delete;
  CudaGraphCache& operator=(CudaGraphCache const&) = delete;
  ~CudaGraphCache();

  // Launches the graph captured for `signature` on `stream`; false when there is none (not captured
  // yet, or capture failed), and the caller enqueues instead.
  bool replay(std::string const& signature, cudaStream_t stream);

  // Captures `context`'s enqueueV3 on `stream` for `signature`. Call it only after an uncaptured
  // enqueueV3 with the same shapes and addresses: TensorRT allocates and updates state lazily on the
  // first enqueue after a change, which must not happen inside a capture. Captures nothing (and
  // never throws) when the capture fails; the stream is left usable either way.
  void capture(std::string const& signature, nvinfer1::IExecutionContext& context, cudaStream_t stream) noexcept;

  // True when `signature` was captured or its capture failed: capture() need not be tried again.
  bool tried(std::string const& signature) const { return mGraphs.count(signature) != 0; }

  void clear() noexcept;

 private:
  // nullptr marks a signature whose capture failed.
  std::map<std::string, cudaGraphExec_t> mGraphs;
};

}  // namespace fusionrt::trt
