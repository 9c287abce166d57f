# libfusionrt_plugins.so: every fusionrt TensorRT plugin in one library that IPluginRegistry::loadLibrary
# and `trtexec --dynamicPlugins` load. Needs the fusionrt_kernels target; a no-op without TensorRT.
if(NOT FUSIONRT_WITH_TENSORRT)
  return()
endif()

add_library(fusionrt_plugins SHARED
  ${PROJECT_SOURCE_DIR}/csrc/tensorrt/logging.cpp
  ${PROJECT_SOURCE_DIR}/csrc/tensorrt/plugin_registry.cpp
  ${PROJECT_SOURCE_DIR}/csrc/tensorrt/concat_layernorm/ConcatLayerNormFields.cpp
  ${PROJECT_SOURCE_DIR}/csrc/tensorrt/concat_layernorm/ConcatLayerNormPlugin.cpp)
target_include_directories(fusionrt_plugins SYSTEM PRIVATE ${TensorRT_INCLUDE_DIR})
target_link_libraries(fusionrt_plugins PRIVATE fusionrt_kernels ${TensorRT_LIBRARY})
target_compile_options(fusionrt_plugins PRIVATE -Wall -Wextra)
# Only getCreators and setLoggerFinder are the library's interface: hide our symbols and those of the
# static archives linked in (kernels, static CUDA runtime), so they cannot clash with the host's.
set_target_properties(fusionrt_plugins PROPERTIES CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
target_link_options(fusionrt_plugins PRIVATE -Wl,--exclude-libs,ALL -Wl,--no-undefined)
install(TARGETS fusionrt_plugins LIBRARY DESTINATION fusionrt)
