#include "tensorrt/runtime/EngineRunner.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "kernels/cuda/cuda_check.h"
#include "tensorrt/logging.h"
#include "tensorrt/plugin_registry.h"
#include "tensorrt/runtime/DeviceScope.h"
#include "tensorrt/runtime/EngineLogger.h"

namespace fusionrt::trt {
namespace {

// TensorType mirrors nvinfer1::DataType so that engine types convert with a cast.
static_assert(static_cast<int32_t>(nvinfer1::DataType::kFLOAT) == static_cast<int32_t>(TensorType::kFloat32));
static_assert(static_cast<int32_t>(nvinfer1::DataType::kHALF) == static_cast<int32_t>(TensorType::kFloat16));
static_assert(static_cast<int32_t>(nvinfer1::DataType::kINT8) == static_cast<int32_t>(TensorType::kInt8));
static_assert(static_cast<int32_t>(nvinfer1::DataType::kINT32) == static_cast<int32_t>(TensorType::kInt32));
static_assert(static_cast<int32_t>(nvinfer1::DataType::kBOOL) == static_cast<int32_t>(TensorType::kBool));
static_assert(static_cast<int32_t>(nvinfer1::DataType::kUINT8) == static_cast<int32_t>(TensorType::kUInt8));
static_assert(static_cast<int32_t>(nvinfer1::DataType::kFP8) == static_cast<int32_t>(TensorType::kFP8));
static_assert(static_cast<int32_t>(nvinfer1::DataType::kBF16) == static_cast<int32_t>(TensorType::kBFloat16));
static_assert(static_cast<int32_t>(nvinfer1::DataType::kINT64) == static_cast<int32_t>(TensorType::kInt64));
static_assert(static_cast<int32_t>(nvinfer1::DataType::kINT4) == static_cast<int32_t>(TensorType::kInt4));
#if NV_TENSORRT_MAJOR >= 11
static_assert(static_cast<int32_t>(nvinfer1::DataType::kFP4) == static_cast<int32_t>(TensorType::kFP4));
static_assert(static_cast<int32_t>(nvinfer1::DataType::kE8M0) == static_cast<int32_t>(TensorType::kE8M0));
#endif

Shape fromDims(nvinfer1::Dims const& dims) { return Shape(dims.d, dims.d + dims.nbDims); }

nvinfer1::Dims toDims(std::string const& tensor, Shape const& shape) {
  nvinfer1::Dims dims{};
  if (shape.size() > static_cast<size_t>(nvinfer1::Dims::MAX_DIMS)) {
    throw std::invalid_argument("input '" + tensor + "' has " + std::to_string(shape.size()) +
                                " dims, more than TensorRT's " + std::to_string(nvinfer1::Dims::MAX_DIMS));
  }
  dims.nbDims = static_cast<int32_t>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) dims.d[i] = shape[i];
  return dims;
}

}  // namespace

EngineRunner::EngineRunner(void const* plan, size_t size, Options const& options)
    : mDevice(options.device), mCudaGraphs(options.cudaGraphs) {
  LoggedErrors errors;
  DeviceScope scope(mDevice);
  cudaDeviceProp properties{};
  throw_on_cuda_error(cudaGetDeviceProperties(&properties, mDevice), "cudaGetDeviceProperties");
  mMapped = properties.integrated != 0 && properties.canMapHostMemory != 0;

  setLoggerFinder(&engineLoggerFinder());
  // Deserialising looks the plugins up in the global registry; registering is a no-op when
  // libfusionrt_plugins.so (or an earlier runner) registered them already.
  if (!registerPlugins(*getPluginRegistry())) LoggedErrors::raise("registering fusionrt's TensorRT plugins failed");
  mRuntime.reset(nvinfer1::createInferRuntime(EngineLogger::instance()));
  if (!mRuntime) LoggedErrors::raise("creating a TensorRT runtime failed");
  mEngine.reset(mRuntime->deserializeCudaEngine(plan, size));
  if (!mEngine) {
    LoggedErrors::raise("deserialising the engine failed (an engine runs only on the TensorRT version and GPU "
                        "model that built it; rebuild it with `fusionrt build`)");
  }
  mContext.reset(mEngine->createExecutionContext());
  if (!mContext) LoggedErrors::raise("creating an execution context failed");
  readTensors();
  // Last, so that nothing above can throw with the stream created (the destructor would not run).
  throw_on_cuda_error(cudaStreamCreateWithFlags(&mStream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
}

EngineRunner::~EngineRunner() {
  // Work still queued reads the buffers freed below.
  cudaStreamSynchronize(mStream);
  cudaStreamDestroy(mStream);
}

void EngineRunner::readTensors() {
  int32_t const count = mEngine->getNbIOTensors();
  for (int32_t i = 0; i < count; ++i) {
    char const* name = mEngine->getIOTensorName(i);
    if (mEngine->isShapeInferenceIO(name)) {
      throw std::invalid_argument(std::string("engine tensor '") + name +
                                  "' is a shape tensor, which fusionrt's runtime does not support");
    }
    EngineTensor tensor;
    tensor.name = name;
    tensor.type = tensorTypeFromInt(static_cast<int32_t>(mEngine->getTensorDataType(name)));
    tensor.shape = fromDims(mEngine->getTensorShape(name));
    if (mEngine->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT) {
      tensor.min = fromDims(mEngine->getProfileShape(name, 0, nvinfer1::OptProfileSelector::kMIN));
      tensor.max = fromDims(mEngine->getProfileShape(name, 0, nvinfer1::OptProfileSelector::kMAX));
      mInputs.push_back(std::move(tensor));
      mInputBuffers.emplace_back(mMapped);
      mWrittenShapes.emplace_back();
    } else {
      mOutputs.push_back(std::move(tensor));
      mOutputBuffers.emplace_back(mMapped);
    }
  }
  mResults.resize(mOutputs.size());
  for (size_t j = 0; j < mOutputs.size(); ++j) mResults[j].type = mOutputs[j].type;
}

void EngineRunner::checkInput(EngineTensor const& tensor, TensorType type, Shape const& shape) const {
  if (type != tensor.type) {
    throw std::invalid_argument("input '" + tensor.name + "' is " + tensorTypeName(type) + ", expected " +
                                tensorTypeName(tensor.type) + " (the engine's type)");
  }
  checkProfileShape(tensor.name, shape, tensor.min, tensor.max);
}

void* EngineRunner::inputBuffer(std::string const& name, TensorType type, Shape const& shape) {
  auto const found = std::find_if(mInputs.begin(), mInputs.end(), [&](EngineTensor const& t) { return t.name == name; });
  if (found == mInputs.end()) throw std::invalid_argument("the engine has no input '" + name + "'");
  size_t const i = static_cast<size_t>(found - mInputs.begin());
  checkInput(*found, type, shape);
  DeviceScope scope(mDevice);
  // A graph captured with the old address would read freed memory.
  if (mInputBuffers[i].reserve(tensorBytes(type, shape))) mGraphs.clear();
  mWrittenShapes[i] = shape;
  return mInputBuffers[i].device();
}

std::string EngineRunner::setShapes(std::vector<InputTensor> const& inputs,
                                    std::vector<std::optional<Shape>> const& written) {
  if (inputs.size() != mInputs.size()) {
    std::string names;
    for (auto const& tensor : mInputs) names += (names.empty() ? "'" : ", '") + tensor.name + "'";
    throw std::invalid_argument("got " + std::to_string(inputs.size()) + " inputs, the engine takes " +
                                std::to_string(mInputs.size()) + ": " + names);
  }
  std::vector<Shape> shapes;
  for (size_t i = 0; i < inputs.size(); ++i) {
    EngineTensor const& tensor = mInputs[i];
    checkInput(tensor, inputs[i].type, inputs[i].shape);
    if (inputs[i].source == InputSource::kBuffer && written[i] != inputs[i].shape) {
      throw std::invalid_argument("input '" + tensor.name + "' is marked as written into its buffer with shape " +
                                  shapeString(inputs[i].shape) + ", but inputBuffer() " +
                                  (written[i] ? "prepared it for " + shapeString(*written[i])
                                              : std::string("was not called for it since the last run")));
    }
    if (!mContext->setInputShape(tensor.name.c_str(), toDims(tensor.name, inputs[i].shape))) {
      LoggedErrors::raise("setInputShape('" + tensor.name + "', " + shapeString(inputs[i].shape) + ") failed");
    }
    shapes.push_back(inputs[i].shape);
  }
  for (size_t j = 0; j < mOutputs.size(); ++j) {
    Shape shape = fromDims(mContext->getTensorShape(mOutputs[j].name.c_str()));
    checkResolvedOutput(mOutputs[j].name, shape);
    mResults[j].bytes = tensorBytes(mResults[j].type, shape);
    mResults[j].shape = std::move(shape);
  }
  return shapeSignature(shapes);
}

bool EngineRunner::bindInputs(std::vector<InputTensor> const& inputs) {
  bool moved = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    InputTensor const& input = inputs[i];
    size_t const bytes = tensorBytes(input.type, input.shape);
    void* address = nullptr;
    if (input.source == InputSource::kBuffer) {
      // Written by the caller on mStream, which orders it before the engine reads it; a graph
      // captured for these shapes baked in this same address.
      address = mInputBuffers[i].device();
    } else if (input.source == InputSource::kDevice && !mCudaGraphs && bytes > 0) {
      // Zero copy: the engine reads the caller's device memory. A graph would bake this address in,
      // so graph mode copies into the runner's own buffer instead.
      address = const_cast<void*>(input.data);
    } else {
      StagedBuffer& buffer = mInputBuffers[i];
      moved = buffer.reserve(bytes) || moved;
      if (input.source == InputSource::kDevice) {
        throw_on_cuda_error(cudaMemcpyAsync(buffer.device(), input.data, bytes, cudaMemcpyDeviceToDevice, mStream),
                            "cudaMemcpyAsync(D2D)");
      } else if (bytes > 0) {
        std::memcpy(buffer.host(), input.data, bytes);
        buffer.upload(bytes, mStream);
      }
      address = buffer.device();
    }
    if (!mContext->setTensorAddress(mInputs[i].name.c_str(), address)) {
      LoggedErrors::raise("setTensorAddress('" + mInputs[i].name + "') failed");
    }
  }
  return moved;
}

bool EngineRunner::bindOutputs() {
  bool moved = false;
  for (size_t j = 0; j < mOutputs.size(); ++j) {
    moved = mOutputBuffers[j].reserve(mResults[j].bytes) || moved;
    if (!mContext->setTensorAddress(mOutputs[j].name.c_str(), mOutputBuffers[j].device())) {
      LoggedErrors::raise("setTensorAddress('" + mOutputs[j].name + "') failed");
    }
    mResults[j].host = mOutputBuffers[j].host();
  }
  return moved;
}

void EngineRunner::execute(std::string const& signature) {
  if (mCudaGraphs && mGraphs.replay(signature, mStream)) return;
  if (!mContext->enqueueV3(mStream)) LoggedErrors::raise("enqueueV3 failed");
  // The enqueue above was the warm-up TensorRT needs after a shape change; capture the next one.
  if (mCudaGraphs && !mGraphs.tried(signature)) mGraphs.capture(signature, *mContext, mStream);
}

std::vector<OutputTensor> EngineRunner::run(std::vector<InputTensor> const& inputs) {
  LoggedErrors errors;
  DeviceScope scope(mDevice);
  // What a caller wrote into an input buffer is for this run alone, whether it succeeds or not.
  std::vector<std::optional<Shape>> written(mInputs.size());
  written.swap(mWrittenShapes);
  std::string const signature = setShapes(inputs, written);
  bool const inputsMoved = bindInputs(inputs);
  bool const outputsMoved = bindOutputs();
  if (inputsMoved || outputsMoved) mGraphs.clear();
  execute(signature);
  for (size_t j = 0; j < mOutputs.size(); ++j) mOutputBuffers[j].download(mResults[j].bytes, mStream);
  cudaError_t const status = cudaStreamSynchronize(mStream);
  if (status != cudaSuccess) {
    LoggedErrors::raise(std::string("running the engine failed (") + cudaGetErrorName(status) + ": " +
                        cudaGetErrorString(status) + ")");
  }
  return mResults;
}

}  // namespace fusionrt::trt
