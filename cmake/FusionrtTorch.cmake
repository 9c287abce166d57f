# libfusionrt_torch.so: fusionrt's ops registered with the PyTorch dispatcher in C++ (csrc/torch/),
# built against the torch importable by the building Python, decided by the FUSIONRT_TORCH option
# (AUTO / ON / OFF). Needs Python_EXECUTABLE and the fusionrt_ops target. The library is tied to that
# torch's C++ ABI, so ops.py loads it only under the torch version recorded here (FUSIONRT_TORCH_VERSION,
# also in build_info()) and falls back to Python kernels otherwise.
#
# torch is read from its package directory rather than through find_package(Torch): TorchConfig pulls
# in CUDA, cuDNN and Kineto detection that this library does not need and that fails on many hosts.
set(FUSIONRT_WITH_TORCH OFF)
set(FUSIONRT_TORCH_VERSION "")
if(FUSIONRT_TORCH STREQUAL "OFF")
  return()
endif()

execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
          "import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__)); print(int(torch._C._GLIBCXX_USE_CXX11_ABI)); print(torch.version.cuda or '')"
  OUTPUT_VARIABLE _torch_facts ERROR_VARIABLE _torch_error RESULT_VARIABLE _torch_status
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _torch_status EQUAL 0)
  string(REGEX MATCH "[^\n]*\n?$" _torch_error_tail "${_torch_error}")
  if(FUSIONRT_TORCH STREQUAL "ON")
    message(FATAL_ERROR "FUSIONRT_TORCH=ON but ${Python_EXECUTABLE} cannot import torch: ${_torch_error_tail} "
                        "Install torch first and build without isolation (pip install --no-build-isolation .).")
  endif()
  message(STATUS "fusionrt: torch not importable at build time (${_torch_error_tail}); "
                 "the torch ops will use Python kernels")
  return()
endif()
string(REPLACE "\n" ";" _torch_facts "${_torch_facts}")
list(GET _torch_facts 0 FUSIONRT_TORCH_VERSION)
list(GET _torch_facts 1 _torch_dir)
list(GET _torch_facts 2 _torch_cxx11_abi)
list(LENGTH _torch_facts _torch_fact_count)
set(_torch_cuda "")
if(_torch_fact_count GREATER 3)
  list(GET _torch_facts 3 _torch_cuda)
endif()

set(_torch_includes ${_torch_dir}/include ${_torch_dir}/include/torch/csrc/api/include)
# The CUDA kernels are registered too when both fusionrt and torch have CUDA; they need torch's current
# stream (c10_cuda, and the CUDA toolkit's headers).
set(_torch_registers_cuda OFF)
if(FUSIONRT_WITH_CUDA AND NOT _torch_cuda STREQUAL "")
  set(_torch_registers_cuda ON)
endif()

# Sets `result` to whether a file of `includes` (torch's headers) compiles with this compiler as the
# library will be compiled; `error` to the first error line when not.
function(fusionrt_torch_headers_compile result error includes)
  set(source ${CMAKE_CURRENT_BINARY_DIR}/fusionrt_torch_probe_${result}.cpp)
  list(TRANSFORM includes PREPEND "#include <")
  list(TRANSFORM includes APPEND ">\n")
  string(JOIN "" text ${includes})
  file(WRITE ${source} "${text}")
  set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
  try_compile(compiles SOURCES ${source}
    CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${_torch_includes};${CUDAToolkit_INCLUDE_DIRS}"
    COMPILE_DEFINITIONS -D_GLIBCXX_USE_CXX11_ABI=${_torch_cxx11_abi}
    CXX_STANDARD 20 CXX_STANDARD_REQUIRED ON
    OUTPUT_VARIABLE output)
  string(REGEX MATCH "error[^\n]*" first_error "${output}")
  set(${result} ${compiles} PARENT_SCOPE)
  set(${error} "${first_error}" PARENT_SCOPE)
endfunction()

if(FUSIONRT_TORCH STREQUAL "AUTO")
  # AUTO must never fail the build: check that this compiler takes the headers the library includes
  # (a Jetson's older gcc may not take a newer torch's C++20; torch's CUDA headers may not take
  # another CUDA major's) before committing to it.
  fusionrt_torch_headers_compile(_torch_cpu_compiles _torch_probe_error "ATen/ops/empty.h;torch/library.h")
  if(NOT _torch_cpu_compiles)
    message(STATUS "fusionrt: torch ${FUSIONRT_TORCH_VERSION}'s headers do not compile with this compiler "
                   "(${_torch_probe_error}); the torch ops will use Python kernels")
    set(FUSIONRT_TORCH_VERSION "")
    return()
  endif()
  if(_torch_registers_cuda)
    fusionrt_torch_headers_compile(_torch_cuda_compiles _torch_probe_error "c10/cuda/CUDAGuard.h;c10/cuda/CUDAStream.h")
    if(NOT _torch_cuda_compiles)
      message(STATUS "fusionrt: torch's CUDA headers do not compile here (${_torch_probe_error}); "
                     "libfusionrt_torch registers CPU kernels only, CUDA tensors use Python kernels")
      set(_torch_registers_cuda OFF)
    endif()
  endif()
endif()

add_library(fusionrt_torch MODULE csrc/torch/kernels.cpp csrc/torch/tensor_args.cpp)
# torch's headers follow its own C++ standard (C++20 from torch 2.10 on); 20 also builds older ones.
set_target_properties(fusionrt_torch PROPERTIES PREFIX lib CXX_STANDARD 20 CXX_STANDARD_REQUIRED ON
                                                CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
target_include_directories(fusionrt_torch SYSTEM PRIVATE ${_torch_includes})
target_compile_definitions(fusionrt_torch PRIVATE _GLIBCXX_USE_CXX11_ABI=${_torch_cxx11_abi})
target_compile_options(fusionrt_torch PRIVATE -Wall -Wextra)
target_link_libraries(fusionrt_torch PRIVATE fusionrt_ops ${_torch_dir}/lib/libtorch_cpu.so ${_torch_dir}/lib/libc10.so)
if(_torch_registers_cuda)
  target_compile_definitions(fusionrt_torch PRIVATE FUSIONRT_TORCH_CUDA=1)
  target_include_directories(fusionrt_torch SYSTEM PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
  target_link_libraries(fusionrt_torch PRIVATE ${_torch_dir}/lib/libc10_cuda.so)
endif()
# Loaded into a process that has imported torch, whose libraries then resolve by soname: no search
# path to torch/lib (whose libgomp would shadow the system one). Keep our symbols and the static
# archives' (kernels, CUDA runtime) to ourselves.
set_target_properties(fusionrt_torch PROPERTIES SKIP_BUILD_RPATH ON)
target_link_options(fusionrt_torch PRIVATE -Wl,--exclude-libs,ALL)
install(TARGETS fusionrt_torch LIBRARY DESTINATION fusionrt)
set(FUSIONRT_WITH_TORCH ON)
message(STATUS "fusionrt: torch ${FUSIONRT_TORCH_VERSION} (C++ ABI ${_torch_cxx11_abi}, CUDA '${_torch_cuda}') "
               "at ${_torch_dir}: building libfusionrt_torch (CUDA kernels: ${_torch_registers_cuda})")
