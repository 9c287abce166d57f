// The one place that knows every fusionrt TensorRT plugin.
//
// Two ways in: loading libfusionrt_plugins.so (IPluginRegistry::loadLibrary, trtexec
// --dynamicPlugins), which calls the exported getCreators / setLoggerFinder entry points, or
// registerPlugins() from code that links the plugins in.
#pragma once

#include <NvInferRuntime.h>

namespace fusionrt::trt {

// Registers every fusionrt plugin creator with `registry` under specs::kPluginNamespace. Idempotent
// and thread-safe: creators already in `registry` are left alone, so calling it from several places
// (or threads) is fine. False, after logging why, when TensorRT refused a creator, e.g. because
// another copy of the library registered the same plugin first.
bool registerPlugins(nvinfer1::IPluginRegistry& registry) noexcept;

}  // namespace fusionrt::trt
