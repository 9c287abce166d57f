# libfusionrt_plugins.so: every fusionrt TensorRT plugin in one library that IPluginRegistry::loadLibrary
# and `trtexec --dynamicPlugins` load, and the source lists of the engine runtime linked into
# fusionrt._C. Needs the fusionrt_ops target (the ops' contracts and kernels); a no-op without TensorRT.
if(NOT FUSIONRT_WITH_TENSORRT)
  return()
endif()

set(_trt ${PROJECT_SOURCE_DIR}/csrc/tensorrt)
# What both the plugin library and fusionrt._C's engine runtime compile; the plugins' TensorRT-free
# rules are the op contracts, in fusionrt_ops.
set(FUSIONRT_TRT_PLUGIN_SOURCES
  ${_trt}/logging.cpp
  ${_trt}/plugin_registry.cpp
  ${_trt}/common/PluginAdapters.cpp
  ${_trt}/concat_layernorm/ConcatLayerNormPlugin.cpp
  ${_trt}/attention/MultiheadAttentionPlugin.cpp)
# The engine runtime fusionrt._C links in (runtime/ShapeRules.cpp and TensorTypes.cpp, TensorRT-free,
# are among _C's sources in every build).
set(FUSIONRT_TRT_RUNTIME_SOURCES
  ${FUSIONRT_TRT_PLUGIN_SOURCES}
  ${_trt}/runtime/EngineLogger.cpp
  ${_trt}/runtime/StagedBuffer.cpp
  ${_trt}/runtime/CudaGraphCache.cpp
  ${_trt}/runtime/EngineRunner.cpp)

add_library(fusionrt_plugins SHARED ${FUSIONRT_TRT_PLUGIN_SOURCES})
target_include_directories(fusionrt_plugins SYSTEM PRIVATE ${TensorRT_INCLUDE_DIR})
target_link_libraries(fusionrt_plugins PRIVATE fusionrt_ops ${TensorRT_LIBRARY})
target_compile_options(fusionrt_plugins PRIVATE -Wall -Wextra)
target_compile_definitions(fusionrt_plugins PRIVATE FUSIONRT_PLUGIN_LIBRARY=1)
# Only getCreators and setLoggerFinder are the library's interface: hide our symbols and those of the
# static archives linked in (kernels, static CUDA runtime), so they cannot clash with the host's.
set_target_properties(fusionrt_plugins PROPERTIES CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
target_link_options(fusionrt_plugins PRIVATE -Wl,--exclude-libs,ALL -Wl,--no-undefined)
install(TARGETS fusionrt_plugins LIBRARY DESTINATION fusionrt)
