// The ILogger of fusionrt's engine runtime: prints warnings and errors to stderr and records the
// errors each thread sees, so a failed TensorRT call surfaces as an exception carrying TensorRT's own
// message instead of a bare "false".
//
// One logger per process: TensorRT keeps the logger of the first runtime it creates, so per-engine
// loggers would silently go unused. Records are per thread because TensorRT reports a failing call
// on the thread that made it.
#pragma once

#include <NvInferRuntime.h>

#include <string>

namespace fusionrt::trt {

class EngineLogger final : public nvinfer1::ILogger {
 public:
  // The process-wide instance; also handed to in-process plugins through setLoggerFinder.
  static EngineLogger& instance() noexcept;

  void log(Severity severity, nvinfer1::AsciiChar const* message) noexcept override;

 private:
  EngineLogger() = default;
};

// Finds EngineLogger::instance(): what the runtime hands to setLoggerFinder (logging.h), so the
// plugins linked into fusionrt._C report to the same logger as the engines that run them.
nvinfer1::ILoggerFinder& engineLoggerFinder() noexcept;

// Collects the errors TensorRT logs on this thread while it lives; the runtime opens one around each
// TensorRT call sequence and throws with what it collected when a call fails. Nested scopes are not
// supported: constructing one clears this thread's records.
class LoggedErrors {
 public:
  LoggedErrors() noexcept;
  LoggedErrors(LoggedErrors const&) = delete;
  LoggedErrors& operator=(LoggedErrors const&) = delete;
  ~LoggedErrors() noexcept;

  // Throws std::runtime_error("<what>: <the errors this thread's open scope collected>").
  [[noreturn]] static void raise(std::string const& what);
};

}  // namespace fusionrt::trt
