// Runs a serialised TensorRT engine: deserialise it (fusionrt's plugins registered), bind I/O
// tensors by name, enqueueV3 on a stream it owns, optionally replay CUDA graphs per input shapes.
//
// Buffers are allocated once per shape and reused: every I/O tensor owns a StagedBuffer that only
// grows. Inputs come as host or device pointers, or are written by the caller straight into the
// runner's own device buffer (inputBuffer(): e.g. image pre-processing on the GPU, so a frame crosses
// to the device once, as uint8); outputs come back in host memory owned by the runner. One run at a
// time: callers serialise (the Python binding holds a mutex).
//
// Errors are exceptions: std::invalid_argument for inputs that do not fit the engine (names, types,
// shapes), std::runtime_error carrying TensorRT's logged message when TensorRT or CUDA fails.
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tensorrt/runtime/CudaGraphCache.h"
#include "tensorrt/runtime/ShapeRules.h"
#include "tensorrt/runtime/StagedBuffer.h"
#include "tensorrt/runtime/TensorTypes.h"

namespace fusionrt::trt {

struct EngineTensor {
  std::string name;
  TensorType type = TensorType::kFloat32;
  Shape shape;     // as built: -1 where dynamic
  Shape min, max;  // inputs: the range optimisation profile 0 accepts
};

enum class InputSource {
  kHost,    // `data` is host memory, copied into the runner's buffer
  kDevice,  // `data` is memory on the runner's device, bound as it is (copied in CUDA-graph mode)
  kBuffer,  // already written into inputBuffer(name, type, shape) on stream(); `data` unused
};

struct InputTensor {
  void const* data = nullptr;  // dense, row-major
  InputSource source = InputSource::kHost;
  TensorType type = TensorType::kFloat32;
  Shape shape;
};

struct OutputTensor {
  TensorType type = TensorType::kFloat32;
  Shape shape;
  void const* host = nullptr;  // dense; valid until the next run
  size_t bytes = 0;
};

class EngineRunner {
 public:
  struct Options {
    int32_t device = 0;
    bool cudaGraphs = false;
  };

  EngineRunner(void const* plan, size_t size, Options const& options);
  EngineRunner(EngineRunner const&) = delete;
  EngineRunner& operator=(EngineRunner const&) = delete;
  ~EngineRunner();

  std::vector<EngineTensor> const& inputs() const noexcept { return mInputs; }
  std::vector<EngineTensor> const& outputs() const noexcept { return mOutputs; }
  int32_t device() const noexcept { return mDevice; }
  // True on an integrated GPU, where I/O lives in mapped host memory.
  bool mapped() const noexcept { return mMapped; }
  bool cudaGraphs() const noexcept { return mCudaGraphs; }
  // The stream every run is enqueued on; device inputs are read on it.
  cudaStream_t stream() const noexcept { return mStream; }

  // The runner's own device buffer for input `name`, made to hold a dense `shape` of `type` (both
  // checked against the engine, as run() checks them), for a caller that writes the input itself,
  // asynchronously on stream(), and then passes it to run() as InputSource::kBuffer with the same
  // shape. It is the address the engine (and any CUDA graph captured for it) binds, so nothing is
  // copied between the caller's kernel and the engine (launch it with the runner's device current,
  // DeviceScope.h). The write is for the next run() alone.
  void* inputBuffer(std::string const& name, TensorType type, Shape const& shape);

  // Runs the engine on `inputs`, given in inputs() order, and waits for it. The outputs, in
  // outputs() order, point into the runner's host buffers until the next call.
  std::vector<OutputTensor> run(std::vector<InputTensor> const& inputs);

 private:
  void readTensors();
  void checkInput(EngineTensor const& tensor, TensorType type, Shape const& shape) const;
  std::string setShapes(std::vector<InputTensor> const& inputs, std::vector<std::optional<Shape>> const& written);
  bool bindInputs(std::vector<InputTensor> const& inputs);
  bool bindOutputs();
  void execute(std::string const& signature);

  int32_t mDevice;
  bool mCudaGraphs;
  bool mMapped = false;
  // Destroyed in reverse: context before engine before runtime, as TensorRT requires.
  std::unique_ptr<nvinfer1::IRuntime> mRuntime;
  std::unique_ptr<nvinfer1::ICudaEngine> mEngine;
  std::unique_ptr<nvinfer1::IExecutionContext> mContext;
  cudaStream_t mStream = nullptr;
  std::vector<EngineTensor> mInputs;
  std::vector<EngineTensor> mOutputs;
  std::vector<StagedBuffer> mInputBuffers;  // parallel to mInputs
  // Parallel to mInputs: the shape inputBuffer() last prepared the buffer for, until a run reads it.
  std::vector<std::optional<Shape>> mWrittenShapes;
  std::vector<StagedBuffer> mOutputBuffers;  // parallel to mOutputs
  std::vector<OutputTensor> mResults;  // parallel to mOutputs
  CudaGraphCache mGraphs;
};

}  // namespace fusionrt::trt
