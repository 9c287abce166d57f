# Decides FUSIONRT_WITH_CUDA from the FUSIONRT_CUDA option (AUTO / ON / OFF) and enables CUDA.
include(CheckLanguage)

set(FUSIONRT_WITH_CUDA OFF)
if(NOT FUSIONRT_CUDA STREQUAL "OFF")
  # nvcc is often installed but not on PATH.
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # Jetson Orin (sm_87) and Hopper (sm_90), and with CUDA 13 Jetson Thor (sm_110, which CUDA 12 does
    # not know), unless the builder says otherwise (CMAKE_CUDA_ARCHITECTURES or CUDAARCHS).
    set(_fusionrt_default_architectures OFF)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED ENV{CUDAARCHS})
      set(CMAKE_CUDA_ARCHITECTURES 87 90)
      set(_fusionrt_default_architectures ON)
    endif()
    enable_language(CUDA)
    # The compiler's version is known only once the language is enabled.
    if(_fusionrt_default_architectures AND FUSIONRT_CUDA_THOR
       AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 13)
      list(APPEND CMAKE_CUDA_ARCHITECTURES 110)
    endif()
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
    find_package(CUDAToolkit REQUIRED)
    set(FUSIONRT_WITH_CUDA ON)
  elseif(FUSIONRT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "FUSIONRT_CUDA=ON but no CUDA compiler was found: install the CUDA toolkit, "
                        "put nvcc on PATH or set CUDACXX / CMAKE_CUDA_COMPILER, or use FUSIONRT_CUDA=AUTO.")
  else()
    message(STATUS "fusionrt: no CUDA compiler found, building CPU kernels only")
  endif()
endif()
