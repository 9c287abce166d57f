#!/usr/bin/env bash
# Lays out a compile-only CUDA 12 toolkit (nvcc, its headers and the CUDA runtime's headers; no
# libraries) in a folder, so `make cuda-check` compiles fusionrt's CUDA sources with CUDA 12 (what
# JetPack 6 ships) beside this machine's CUDA 13. Nothing is installed into the system or a venv.
#
# PyPI's nvidia-cuda-nvcc-cu12 wheels hold ptxas, libnvvm and the crt headers but no nvcc driver,
# cicc or cudafe++, so the compiler comes from Debian trixie's nvidia-cuda-toolkit (CUDA 12.4, the
# newest CUDA 12 in Debian) and the headers from the PyPI wheels of exactly that release.
#
# Usage: tools/cuda12_toolkit.sh DEST       (then DEST/bin/nvcc; a second run with DEST complete is a no-op)
set -euo pipefail

dest=${1:?usage: tools/cuda12_toolkit.sh DEST}
python=${PYTHON:-python3}
debian_toolkit="nvidia-cuda-toolkit=12.4.131~12.4.1-2"
pypi_headers=("nvidia-cuda-nvcc-cu12==12.4.131" "nvidia-cuda-runtime-cu12==12.4.127")

if [[ -x "$dest/bin/nvcc" && -f "$dest/.complete" ]]; then
  exit 0
fi
tools=$(cd "$(dirname "$0")" && pwd)
rm -rf "$dest"
downloads="$dest.downloads"
mkdir -p "$dest/bin" "$dest/nvvm/bin" "$dest/include" "$downloads"

echo "cuda12_toolkit: fetching $debian_toolkit (Debian trixie, ~90 MB) and ${pypi_headers[*]} (PyPI)"
"$tools/apt_fetch.sh" trixie amd64 "$downloads" "$debian_toolkit"
"$python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$downloads/pypi" "${pypi_headers[@]}"

deb=$(find "$downloads" -maxdepth 1 -name 'nvidia-cuda-toolkit_*.deb' | head -n 1)
dpkg-deb -x "$deb" "$downloads/deb"
payload="$downloads/deb/usr"
# Debian's /usr/bin/nvcc is a shell wrapper; the driver and cicc live in /usr/lib/nvidia-cuda-toolkit.
cp -a "$payload/lib/nvidia-cuda-toolkit/bin/nvcc" "$payload/lib/nvidia-cuda-toolkit/bin/crt" \
      "$payload/bin/cudafe++" "$payload/bin/fatbinary" "$payload/bin/ptxas" "$payload/bin/nvlink" \
      "$payload/bin/bin2c" "$dest/bin/"
cp -a "$payload/lib/nvidia-cuda-toolkit/bin/cicc" "$dest/nvvm/bin/"
cp -a "$payload/lib/nvidia-cuda-toolkit/libdevice" "$dest/nvvm/"
cp -a "$downloads/pypi/nvidia/cuda_runtime/include/." "$downloads/pypi/nvidia/cuda_nvcc/include/." "$dest/include/"
find "$dest/include" \( -name '__init__.py' -o -name '__pycache__' \) -prune -exec rm -rf {} +
# The layout of a toolkit under /usr/local/cuda, relative to nvcc, so the folder can live anywhere.
cat >"$dest/bin/nvcc.profile" <<'EOF'
TOP                = $(_HERE_)/..
NVVMIR_LIBRARY_DIR = $(TOP)/nvvm/libdevice
PATH              += $(TOP)/nvvm/bin:$(_HERE_):
INCLUDES          += "-I$(TOP)/include" $(_SPACE_)
EOF
rm -rf "$downloads"
touch "$dest/.complete"
"$dest/bin/nvcc" --version | tail -n 2
