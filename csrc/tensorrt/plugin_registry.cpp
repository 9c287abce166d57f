#include "tensorrt/plugin_registry.h"

#include <array>
#include <mutex>
#include <string>

#include "tensorrt/attention/MultiheadAttentionPlugin.h"
#include "tensorrt/concat_layernorm/ConcatLayerNormPlugin.h"
#include "tensorrt/logging.h"

// libfusionrt_plugins.so is built with hidden visibility; TensorRT's loader looks up exactly these two
// names in it. fusionrt._C links the plugins in too, and keeps them hidden there.
#if FUSIONRT_PLUGIN_LIBRARY
#define FUSIONRT_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))
#else
#define FUSIONRT_PLUGIN_EXPORT extern "C"
#endif

namespace fusionrt::trt {
namespace {

// Creators live as long as the library: registries keep pointers to them.
struct Creators {
  ConcatLayerNormPluginCreator concatLayerNorm;
  MultiheadAttentionPluginCreator multiheadAttention;

  std::array<nvinfer1::IPluginCreatorInterface*, 2> all{&concatLayerNorm, &multiheadAttention};
};

Creators& creators() {
  static Creators instance;
  return instance;
}

// Registered by this copy, or by another copy of the plugins in the same TensorRT (fusionrt._C's
// runtime and libfusionrt_plugins.so loaded by the tensorrt Python package): the same plugins either
// way, and registering twice would be refused with an error.
bool isRegistered(nvinfer1::IPluginRegistry& registry, nvinfer1::IPluginCreatorInterface* creator) {
  // Every fusionrt creator is an IPluginCreatorV3One (Creators holds nothing else).
  auto const* v3 = static_cast<nvinfer1::IPluginCreatorV3One const*>(creator);
  return registry.getCreator(v3->getPluginName(), v3->getPluginVersion(), v3->getPluginNamespace()) != nullptr;
}

}  // namespace

bool registerPlugins(nvinfer1::IPluginRegistry& registry) noexcept {
  try {
    static std::mutex mutex;
    std::lock_guard<std::mutex> lock(mutex);
    bool allRegistered = true;
    for (nvinfer1::IPluginCreatorInterface* creator : creators().all) {
      if (isRegistered(registry, creator)) continue;
      if (!registry.registerCreator(*creator, kPluginNamespace)) {
        logMessage(nvinfer1::ILogger::Severity::kERROR,
                   (std::string("fusionrt: TensorRT refused a plugin creator in namespace '") +
                    kPluginNamespace + "' (already registered by another library?)")
                       .c_str());
        allRegistered = false;
      }
    }
    return allRegistered;
  } catch (std::exception const& e) {
    logException("fusionrt", "registerPlugins", e);
  }
  return false;
}

}  // namespace fusionrt::trt

FUSIONRT_PLUGIN_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept {
  fusionrt::trt::setLoggerFinder(finder);
}

FUSIONRT_PLUGIN_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) noexcept {
  try {
    auto& all = fusionrt::trt::creators().all;
    nbCreators = static_cast<int32_t>(all.size());
    return all.data();
  } catch (std::exception const& e) {
    fusionrt::trt::logException("fusionrt", "getCreators", e);
  }
  nbCreators = 0;
  return nullptr;
}
