#include "tensorrt/logging.h"

#include <cstdio>
#include <mutex>
#include <string>

namespace fusionrt::trt {
namespace {

std::mutex gMutex;
nvinfer1::ILoggerFinder* gFinder = nullptr;
nvinfer1::ILogger* gLogger = nullptr;

nvinfer1::ILogger* currentLogger() {
  std::lock_guard<std::mutex> lock(gMutex);
  // The finder may not have a logger until TensorRT has created a builder or runtime, so ask again
  // until it answers.
  if (gLogger == nullptr && gFinder != nullptr) gLogger = gFinder->findLogger();
  return gLogger != nullptr ? gLogger : ::getLogger();
}

}  // namespace

void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept {
  std::lock_guard<std::mutex> lock(gMutex);
  if (finder != gFinder) gLogger = nullptr;
  gFinder = finder;
}

void logMessage(nvinfer1::ILogger::Severity severity, char const* message) noexcept {
  try {
    if (nvinfer1::ILogger* logger = currentLogger()) {
      logger->log(severity, message);
      return;
    }
  } catch (...) {
    // A throwing logger must not turn an error report into a crash; stderr below still tells.
  }
  std::fprintf(stderr, "[fusionrt] %s\n", message);
}

void logException(char const* plugin, char const* method, std::exception const& e) noexcept {
  try {
    logMessage(nvinfer1::ILogger::Severity::kERROR, (std::string(plugin) + "::" + method + ": " + e.what()).c_str());
  } catch (...) {
    std::fprintf(stderr, "[fusionrt] %s::%s: %s\n", plugin, method, e.what());
  }
}

}  // namespace fusionrt::trt
