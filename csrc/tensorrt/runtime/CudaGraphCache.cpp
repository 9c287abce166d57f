#include "tensorrt/runtime/CudaGraphCache.h"

#include <string>

#include "kernels/cuda/cuda_check.h"
#include "tensorrt/logging.h"

namespace fusionrt::trt {

CudaGraphCache::~CudaGraphCache() { clear(); }

void CudaGraphCache::clear() noexcept {
  for (auto& entry : mGraphs) {
    if (entry.second != nullptr) cudaGraphExecDestroy(entry.second);
  }
  mGraphs.clear();
}

bool CudaGraphCache::replay(std::string const& signature, cudaStream_t stream) {
  auto const found = mGraphs.find(signature);
  if (found == mGraphs.end() || found->second == nullptr) return false;
  throw_on_cuda_error(cudaGraphLaunch(found->second, stream), "cudaGraphLaunch");
  return true;
}

void CudaGraphCache::capture(std::string const& signature, nvinfer1::IExecutionContext& context,
                             cudaStream_t stream) noexcept {
  try {
    cudaGraphExec_t exec = nullptr;
    // Thread-local mode: other threads' CUDA calls (another runner, a DLPack producer) stay legal
    // while this thread captures.
    if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess) {
      bool const enqueued = context.enqueueV3(stream);
      // Always end the capture, even after a failed enqueue, or the stream stays in capture mode.
      cudaGraph_t graph = nullptr;
      cudaError_t const ended = cudaStreamEndCapture(stream, &graph);
      if (enqueued && ended == cudaSuccess && graph != nullptr) {
        if (cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) exec = nullptr;
      }
      if (graph != nullptr) cudaGraphDestroy(graph);
    }
    if (exec == nullptr) {
      // A failed capture leaves its (non-sticky) error in the runtime's last-error slot; clear it so the
      // next CUDA check does not report it.
      cudaGetLastError();
      logMessage(nvinfer1::ILogger::Severity::kWARNING,
                 ("fusionrt: could not capture a CUDA graph for input shapes " + signature +
                  "; running those shapes without one")
                     .c_str());
    }
    mGraphs[signature] = exec;
  } catch (std::exception const& e) {
    logException("fusionrt", "CudaGraphCache::capture", e);
  }
}

}  // namespace fusionrt::trt
