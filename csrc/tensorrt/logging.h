// Where fusionrt's plugins report errors: the logger of the TensorRT instance that loaded them.
//
// TensorRT hands a plugin library an ILoggerFinder (setLoggerFinder) when it loads it; plugins that
// were registered in-process (registerPlugins) and never got one fall back to libnvinfer's global
// logger. Safe to call from any thread.
#pragma once

#include <NvInferRuntime.h>

#include <exception>

namespace fusionrt::trt {

void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;

void logMessage(nvinfer1::ILogger::Severity severity, char const* message) noexcept;

// "<plugin>::<method>: <what>" at kERROR: what every plugin virtual does with an exception it
// catches, since none may cross the TensorRT boundary.
void logException(char const* plugin, char const* method, std::exception const& e) noexcept;

}  // namespace fusionrt::trt
