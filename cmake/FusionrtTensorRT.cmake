# Decides FUSIONRT_WITH_TENSORRT from the FUSIONRT_TENSORRT option (AUTO / ON / OFF): TensorRT needs
# its headers and libnvinfer (under TensorRT_ROOT, or the system paths JetPack installs into) and CUDA.
set(FUSIONRT_WITH_TENSORRT OFF)
set(TensorRT_VERSION "")
if(NOT FUSIONRT_TENSORRT STREQUAL "OFF")
  set(TensorRT_ROOT "${TensorRT_ROOT}" CACHE PATH "TensorRT install prefix (include/ and lib/)")
  find_path(TensorRT_INCLUDE_DIR NvInfer.h
    HINTS ${TensorRT_ROOT} $ENV{TensorRT_ROOT} PATH_SUFFIXES include include/aarch64-linux-gnu include/x86_64-linux-gnu)
  find_library(TensorRT_LIBRARY nvinfer
    HINTS ${TensorRT_ROOT} $ENV{TensorRT_ROOT} PATH_SUFFIXES lib lib64 lib/aarch64-linux-gnu lib/x86_64-linux-gnu)
  set(_missing "")
  if(NOT TensorRT_INCLUDE_DIR OR NOT TensorRT_LIBRARY)
    set(_missing "TensorRT headers and libnvinfer (looked under TensorRT_ROOT='${TensorRT_ROOT}' and system paths)")
  elseif(NOT FUSIONRT_WITH_CUDA)
    set(_missing "CUDA (TensorRT support needs the CUDA kernels)")
  endif()
  if(_missing STREQUAL "")
    file(STRINGS "${TensorRT_INCLUDE_DIR}/NvInferVersion.h" _trt_version_lines
         REGEX "#define (TRT_MAJOR_ENTERPRISE|TRT_MINOR_ENTERPRISE|TRT_PATCH_ENTERPRISE|NV_TENSORRT_MAJOR|NV_TENSORRT_MINOR|NV_TENSORRT_PATCH) ")
    foreach(_part MAJOR MINOR PATCH)
      string(REGEX MATCH "(TRT_${_part}_ENTERPRISE|NV_TENSORRT_${_part}) +([0-9]+)" _match "${_trt_version_lines}")
      list(APPEND _trt_version_parts "${CMAKE_MATCH_2}")
    endforeach()
    list(JOIN _trt_version_parts "." TensorRT_VERSION)
    set(FUSIONRT_WITH_TENSORRT ON)
    message(STATUS "fusionrt: TensorRT ${TensorRT_VERSION} at ${TensorRT_INCLUDE_DIR}")
  elseif(FUSIONRT_TENSORRT STREQUAL "ON")
    message(FATAL_ERROR "FUSIONRT_TENSORRT=ON but ${_missing} not found. Set -DTensorRT_ROOT=<prefix> "
                        "or use FUSIONRT_TENSORRT=AUTO.")
  else()
    message(STATUS "fusionrt: TensorRT not found, building without it")
  endif()
endif()
