#include "tensorrt/runtime/EngineLogger.h"

#include <cstdio>
#include <stdexcept>
#include <string>

namespace fusionrt::trt {
namespace {

using Severity = nvinfer1::ILogger::Severity;

// The errors logged on this thread inside a LoggedErrors scope, "; "-separated; null outside one, so
// threads without a scope (TensorRT's own) record nothing.
thread_local std::string* tErrors = nullptr;

char const* severityName(Severity severity) {
  switch (severity) {
    case Severity::kINTERNAL_ERROR: return "internal error";
    case Severity::kERROR: return "error";
    case Severity::kWARNING: return "warning";
    case Severity::kINFO: return "info";
    case Severity::kVERBOSE: return "verbose";
  }
  return "message";
}

}  // namespace

EngineLogger& EngineLogger::instance() noexcept {
  static EngineLogger logger;
  return logger;
}

void EngineLogger::log(Severity severity, nvinfer1::AsciiChar const* message) noexcept {
  if (severity > Severity::kWARNING) return;
  std::fprintf(stderr, "[fusionrt][TensorRT %s] %s\n", severityName(severity), message);
  if (severity > Severity::kERROR || tErrors == nullptr) return;
  try {
    if (!tErrors->empty()) *tErrors += "; ";
    *tErrors += message;
  } catch (...) {
    // Out of memory while recording: the message was printed above, which is all that is left to do.
  }
}

nvinfer1::ILoggerFinder& engineLoggerFinder() noexcept {
  struct Finder final : nvinfer1::ILoggerFinder {
    nvinfer1::ILogger* findLogger() noexcept override { return &EngineLogger::instance(); }
  };
  static Finder finder;
  return finder;
}

LoggedErrors::LoggedErrors() noexcept {
  static thread_local std::string errors;
  errors.clear();
  tErrors = &errors;
}

LoggedErrors::~LoggedErrors() noexcept { tErrors = nullptr; }

void LoggedErrors::raise(std::string const& what) {
  throw std::runtime_error(what + ": " +
                           (tErrors != nullptr && !tErrors->empty() ? *tErrors : "TensorRT logged no error"));
}

}  // namespace fusionrt::trt
