#!/usr/bin/env bash
# Builds fusionrt for aarch64 (Jetson's CPU) and runs its torch-free tests there, under qemu-user:
#
#  1. a Debian bookworm arm64 root holding Python 3.11 and the libraries _C needs (libstdc++, libgomp),
#     unpacked from .debs (tools/apt_fetch.sh) into ROOT_CACHE, with numpy, pytest and hypothesis from
#     PyPI's aarch64 wheels beside it; kept for the next run;
#  2. fusionrt._C cross-compiled by Debian's aarch64-linux-gnu g++ (cmake/aarch64-linux-gnu.toolchain.cmake)
#     against that root's Python headers, CPU kernels only, as on a Jetson without CUDA;
#  3. the package staged as a wheel would lay it out, then under qemu-aarch64: `fusionrt info` and the
#     tests on the numpy path (fp16 / bf16 conversions, fused concat + LayerNorm and attention against
#     float64 numpy references, the op contracts).
#
# Compiling under emulation (pip wheel . inside the root) takes tens of minutes on two cores, hence the
# cross compiler; x86-only code, flags or intrinsics still fail to compile or fail the tests here.
#
# Usage: [PYTHON=.venv/bin/python] tools/aarch64_check.sh ROOT_CACHE BUILD_DIR TEST...   (from the repository root)
set -euo pipefail

usage="usage: tools/aarch64_check.sh ROOT_CACHE BUILD_DIR TEST..."
root_cache=${1:?$usage}
build=${2:?$usage}
shift 2
[[ $# -gt 0 ]] || { echo "$usage" >&2; exit 2; }
tests=("$@")
python=${PYTHON:-python3}
tools=$(cd "$(dirname "$0")" && pwd)
python_version=3.11  # bookworm's, as on JetPack 6's Ubuntu 22.04 (3.10) and 7's 24.04 (3.12): any CPython 3
root_packages=(
  python3.11 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11-dev
  libc6 libgcc-s1 gcc-12-base libstdc++6 libgomp1 libcrypt1 libexpat1 zlib1g libffi8 libbz2-1.0 liblzma5
  libzstd1 libssl3 libsqlite3-0 libuuid1 libncursesw6 libtinfo6 libreadline8 libdb5.3 libgdbm6 libnsl2
  libtirpc3 libtirpc-common libgssapi-krb5-2 libkrb5-3 libkrb5support0 libk5crypto3 libcom-err2
  libkeyutils1 libselinux1 libpcre2-8-0 libacl1 libmd0
)
test_packages=(numpy pytest hypothesis)

# --- host tools: Debian's qemu-user-static and aarch64 cross compiler -----------------------------
if ! command -v qemu-aarch64-static >/dev/null || ! command -v aarch64-linux-gnu-g++ >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "aarch64-check: FAILED: needs qemu-user-static and g++-aarch64-linux-gnu (apt-get install them as root)" >&2
    exit 1
  fi
  echo "aarch64-check: installing qemu-user-static and g++-aarch64-linux-gnu"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static g++-aarch64-linux-gnu
fi

# --- 1. the arm64 root (kept) ------------------------------------------------------------------------
root="$root_cache/root"
site="$root_cache/site-packages"
if [[ ! -f "$root_cache/.complete" ]]; then
  echo "aarch64-check: making the arm64 root in $root_cache"
  rm -rf "$root_cache"
  "$tools/apt_fetch.sh" bookworm arm64 "$root_cache/debs" "${root_packages[@]}"
  for deb in "$root_cache"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
  "$python" -m pip install --quiet --disable-pip-version-check --target "$site" --only-binary=:all: \
    --implementation cp --python-version "$python_version" --abi "cp${python_version/./}" \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 \
    "${test_packages[@]}"
  rm -rf "$root_cache/debs"
  touch "$root_cache/.complete"
fi
run_aarch64() {  # a command of the root's Python, emulated, seeing the staged package and the test packages
  PYTHONPATH="$build/site:$site" PYTHONDONTWRITEBYTECODE=1 qemu-aarch64-static -L "$root" \
    "$root/usr/bin/python$python_version" "$@"
}

# --- 2. cross-compiled fusionrt._C (build dir kept: reruns recompile only what changed) ----------
soabi="cpython-${python_version/./}-aarch64-linux-gnu"
mkdir -p "$build"
"$python" -m cmake -S . -B "$build/cmake" -G Ninja -DCMAKE_MAKE_PROGRAM="$("$python" -c 'import ninja, os; print(os.path.join(ninja.BIN_DIR, "ninja"))')" \
  --toolchain "$PWD/cmake/aarch64-linux-gnu.toolchain.cmake" -DCMAKE_BUILD_TYPE=Release \
  -DSKBUILD=ON -DSKBUILD_PROJECT_VERSION="$("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')" \
  -DFUSIONRT_CUDA=OFF -DFUSIONRT_TENSORRT=OFF -DFUSIONRT_TORCH=OFF \
  -DPython_EXECUTABLE="$(command -v "$python")" -DPython_INCLUDE_DIR="$root/usr/include/python$python_version" \
  -DPYTHON_MODULE_EXTENSION=".$soabi.so" -DCMAKE_CXX_FLAGS="-isystem $root/usr/include" \
  -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" >"$build/cmake.log" \
  || { cat "$build/cmake.log" >&2; echo "aarch64-check: FAILED: configuring the cross build" >&2; exit 1; }
"$python" -m cmake --build "$build/cmake" -j "$(nproc)"

# --- 3. the package as a wheel lays it out, run under emulation --------------------------------
rm -rf "$build/site"
mkdir -p "$build/site"
cp -r python/fusionrt "$build/site/"
find "$build/site" -name __pycache__ -prune -exec rm -rf {} +
cp "$build/cmake/_C.$soabi.so" "$build/site/fusionrt/"
echo "aarch64-check: $(run_aarch64 -c 'import platform, sys; print(f"Python {platform.python_version()} on {platform.machine()}")') (qemu-aarch64)"
echo "aarch64-check: fusionrt info:"
run_aarch64 -m fusionrt.cli info
run_aarch64 -m pytest -q -p no:cacheprovider "${tests[@]}"
