// The one place that knows every fusionrt TensorRT plugin.
//
// Two ways in: loading libfusionrt_plugins.so (IPluginRegistry::loadLibrary, trtexec
// --dynamicPlugins), which calls the exported getCreators / setLoggerFinder entry points, or
// registerPlugins() from code that links the plugins in.
#pragma once

#include <NvInferRuntime.h>

namespace fusionrt::trt {

// Registers every fusionrt plugin creator with `registry` under kPluginNamespace (ops/op_fields.h). Idempotent
// and thread-safe: a plugin `registry` already has (from this code or another copy of it, such as
// libfusionrt_plugins.so loaded beside fusionrt._C) is left alone, so calling it from several places
// (or threads) is fine. False, after logging why, when TensorRT refused a creator.
bool registerPlugins(nvinfer1::IPluginRegistry& registry) noexcept;

}  // namespace fusionrt::trt
