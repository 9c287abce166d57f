#!/usr/bin/env bash
# Compiles fusionrt's CUDA code with one CUDA toolkit, objects only: every .cu under csrc/ for each
# given architecture (flags as CMake passes them), and every C++ source outside csrc/tensorrt/ whose
# CUDA path is switched on by FUSIONRT_WITH_CUDA / FUSIONRT_TORCH_CUDA (the ops' device dispatch,
# the bindings' CUDA device queries, the torch CUDA registration) against that toolkit's headers.
# fusionrt's own C++ warnings are errors; toolkit, torch and pybind11 headers are -isystem.
# csrc/tensorrt/ is `make trt-check`'s.
#
# Usage: [PYTHON=.venv/bin/python] tools/cuda_check.sh NVCC OUT_DIR ARCH...   (from the repository root)
#   e.g. tools/cuda_check.sh /usr/local/cuda/bin/nvcc build/cuda-check/13 87 110
# Prints the toolkit's version and one line per toolkit; fails on any compile error (the compiler's
# messages follow the failed source's name).
set -uo pipefail

usage="usage: tools/cuda_check.sh NVCC OUT_DIR ARCH..."
nvcc=${1:?$usage}
out=${2:?$usage}
shift 2
[[ $# -gt 0 ]] || { echo "$usage" >&2; exit 2; }
python=${PYTHON:-python3}
cxx=${CXX:-c++}

if [[ ! -x "$nvcc" ]]; then
  echo "cuda-check: FAILED: no nvcc at '$nvcc'" >&2
  exit 1
fi
release=$("$nvcc" --version | sed -n 's/.*release \([0-9.]*\), V\([0-9.]*\).*/\2/p')
toolkit=$(cd "$(dirname "$nvcc")/.." && pwd)
cuda_includes=(-isystem "$toolkit/include")
[[ -d "$toolkit/include/cccl" ]] && cuda_includes+=(-isystem "$toolkit/include/cccl")  # CUDA 13 moved CCCL here
# An architecture newer than the toolkit (sm_110 before CUDA 13) is left out, as CMake's default does.
known_archs=" $("$nvcc" --list-gpu-arch | sed -n 's/^compute_//p' | tr '\n' ' ') "
archs=()
for arch in "$@"; do
  if [[ "$known_archs" == *" $arch "* ]]; then
    archs+=("$arch")
  else
    echo "cuda-check: CUDA $release does not know sm_$arch: not compiled for it"
  fi
done
[[ ${#archs[@]} -gt 0 ]] || { echo "cuda-check: FAILED: CUDA $release knows none of sm_$*" >&2; exit 1; }
echo "cuda-check: CUDA $release ($nvcc), ${archs[*]/#/sm_}"

gencode=()
for arch in "${archs[@]}"; do
  gencode+=("--generate-code=arch=compute_$arch,code=[compute_$arch,sm_$arch]")
done
# Flags of the project's build: torch facts as cmake/FusionrtTorch.cmake reads them, pybind11's and
# Python's include directories as pybind11_add_module passes them.
read -r torch_dir torch_abi < <("$python" -c "import os, torch; print(os.path.dirname(torch.__file__), int(torch._C._GLIBCXX_USE_CXX11_ABI))" 2>/dev/null)
read -ra pybind11_includes < <("$python" -m pybind11 --includes 2>/dev/null)

mapfile -t cuda_sources < <(find csrc -name '*.cu' | sort)
mapfile -t host_sources < <(grep -rlE 'FUSIONRT_(WITH|TORCH)_CUDA' csrc --include='*.cpp' | grep -v '^csrc/tensorrt/' | sort)

# Prints the compile command for one source, one word a line; nothing when its includes are unknown.
compile_command() {
  local source=$1 object=$2
  local common=(-I csrc -DFUSIONRT_WITH_CUDA=1 -c "$source" -o "$object")
  case "$source" in
    *.cu)
      printf '%s\n' "$nvcc" -O3 -std=c++17 "${gencode[@]}" -Xcompiler=-fPIC,-Wall,-Wextra -Werror=all-warnings \
        "${common[@]}" ;;
    csrc/torch/*)
      [[ -n "${torch_dir:-}" ]] || return 1
      printf '%s\n' "$cxx" -std=c++20 -fPIC -Wall -Wextra -Werror -DFUSIONRT_TORCH_CUDA=1 \
        "-D_GLIBCXX_USE_CXX11_ABI=$torch_abi" -isystem "$torch_dir/include" \
        -isystem "$torch_dir/include/torch/csrc/api/include" "${cuda_includes[@]}" "${common[@]}" ;;
    csrc/bindings/*)
      [[ ${#pybind11_includes[@]} -gt 0 ]] || return 1
      # _C's build facts, as CMakeLists.txt defines them (TensorRT is trt-check's).
      printf '%s\n' "$cxx" -std=c++17 -fPIC -fvisibility=hidden -Wall -Wextra -Werror \
        -DFUSIONRT_VERSION='"cuda-check"' -DFUSIONRT_CUDA_VERSION="\"$release\"" \
        -DFUSIONRT_CUDA_ARCHITECTURES="\"$(IFS=,; echo "${archs[*]}")\"" -DFUSIONRT_WITH_TENSORRT=0 \
        "${pybind11_includes[@]/#-I/-isystem}" "${cuda_includes[@]}" "${common[@]}" ;;
    *)
      printf '%s\n' "$cxx" -std=c++17 -fPIC -Wall -Wextra -Werror "${cuda_includes[@]}" "${common[@]}" ;;
  esac
}

jobs_max=$(nproc)
sources=()
skipped=()
for source in "${cuda_sources[@]}" "${host_sources[@]}"; do
  object="$out/${source#csrc/}.o"
  mkdir -p "$(dirname "$object")"
  rm -f "$object.failed"
  mapfile -t command < <(compile_command "$source" "$object")
  if [[ ${#command[@]} -eq 0 ]]; then
    skipped+=("$source")
    continue
  fi
  sources+=("$source")
  # A marker file, not `wait PID`, carries the result: `wait -n` below may already have reaped the job.
  { "${command[@]}" 2>"$object.log" || touch "$object.failed"; } &
  while [[ $(jobs -rp | wc -l) -ge $jobs_max ]]; do wait -n; done
done
wait
failed=0
for source in "${sources[@]}"; do
  object="$out/${source#csrc/}.o"
  if [[ -f "$object.failed" ]]; then
    echo "cuda-check: FAILED $source with CUDA $release:" >&2
    cat "$object.log" >&2
    failed=$((failed + 1))
  fi
done
echo "cuda-check: CUDA $release: $((${#sources[@]} - failed))/$((${#cuda_sources[@]} + ${#host_sources[@]})) sources compiled"
if [[ ${#skipped[@]} -gt 0 ]]; then
  echo "cuda-check: FAILED: $python gives no torch / pybind11 include paths for ${skipped[*]}" >&2
  failed=$((failed + ${#skipped[@]}))
fi
exit $((failed > 0))
