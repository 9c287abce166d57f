#!/usr/bin/env bash
# Compiles every C++ source under csrc/tensorrt/ against each TensorRT header set under $1 (one
# folder per version, each holding include/), objects only, warnings as errors. The plugins must
# build for JetPack 6 (TensorRT 10.3) and JetPack 7 (TensorRT 11) on machines that have neither
# library; TensorRT and CUDA headers are -isystem so only fusionrt's own warnings count. The
# pybind11 binding of the engine runtime is compiled too when PYBIND11_INCLUDES holds the flags of
# `python -m pybind11 --includes`.
#
# Usage: [PYBIND11_INCLUDES=...] tools/trt_check.sh TRT_HEADERS_DIR [CUDA_INCLUDE_DIR]   (from the repository root)
set -uo pipefail

trt_headers=${1:?usage: tools/trt_check.sh TRT_HEADERS_DIR [CUDA_INCLUDE_DIR]}
cuda_include=${2:-/usr/local/cuda/include}
cxx=${CXX:-c++}
out=build/trt-check

if ! compgen -G "$trt_headers/*/include/NvInfer.h" >/dev/null; then
  echo "trt-check skipped: no TensorRT header sets (<version>/include/NvInfer.h) under '$trt_headers'; set TRT_HEADERS"
  exit 0
fi
if [[ ! -f "$cuda_include/cuda_runtime_api.h" ]]; then
  echo "trt-check skipped: no CUDA headers at '$cuda_include'; set CUDA_INCLUDE"
  exit 0
fi

mapfile -t sources < <(find csrc/tensorrt -name '*.cpp' | sort)
binding_sources=(csrc/bindings/engine_runner.cpp)
if [[ -n "${PYBIND11_INCLUDES:-}" ]]; then
  sources+=("${binding_sources[@]}")
else
  echo "trt-check: not compiling ${binding_sources[*]}: PYBIND11_INCLUDES is unset"
fi
failed=0
for include in "$trt_headers"/*/include; do
  version=$(basename "$(dirname "$include")")
  pids=()
  for source in "${sources[@]}"; do
    object="$out/$version/${source#csrc/}"
    object="${object%.cpp}.o"
    mkdir -p "$(dirname "$object")"
    extra=()
    if [[ "$source" == csrc/bindings/* ]]; then
      read -ra extra <<<"$PYBIND11_INCLUDES"
      # As pybind11_add_module compiles it: pybind11 types are hidden, so ours must be too.
      extra+=(-I csrc/bindings -fvisibility=hidden -DFUSIONRT_WITH_TENSORRT=1)
    fi
    "$cxx" -std=c++17 -Wall -Wextra -Werror -I csrc -isystem "$include" -isystem "$cuda_include" \
      -DFUSIONRT_WITH_CUDA=1 "${extra[@]}" -c "$source" -o "$object" &
    pids+=($!)
  done
  version_failed=0
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      echo "trt-check: FAILED ${sources[$i]} against TensorRT $version ($include)" >&2
      version_failed=$((version_failed + 1))
    fi
  done
  echo "trt-check: TensorRT $version: $((${#sources[@]} - version_failed))/${#sources[@]} sources compiled"
  failed=$((failed + version_failed))
done
exit $((failed > 0))
