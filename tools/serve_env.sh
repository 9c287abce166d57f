#!/usr/bin/env bash
# Makes the Triton serve environment (make serve-env): a virtualenv SERVE_VENV beside the project's
# MAIN_VENV, holding nvidia-pytriton (tritonserver with the Python backend; it pins numpy < 2, which is
# why this is not MAIN_VENV), the deployment extra's packages (fusionrt[onnx], read from pyproject.toml),
# and this checkout's fusionrt: MAIN_VENV's editable-install hook and its compiled fusionrt._C are linked
# in, not rebuilt (the pybind11 module loads under numpy 1 and 2 alike). Idempotent; a rerun that finds
# everything installed takes seconds.
#
# usage: tools/serve_env.sh MAIN_VENV SERVE_VENV   (PYTHON: the interpreter that made MAIN_VENV)
set -euo pipefail
main=${1:?usage: serve_env.sh MAIN_VENV SERVE_VENV}
serve=${2:?usage: serve_env.sh MAIN_VENV SERVE_VENV}
python=${PYTHON:-python3}

main_site=$("$main/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
hook=$(ls "$main_site"/_editable_skbc_fusionrt.pth 2>/dev/null || true)
if [ -z "$hook" ]; then
    echo "serve_env: $main has no editable fusionrt install (make install makes one)" >&2
    exit 1
fi
[ -x "$serve/bin/python" ] || "$python" -m venv "$serve"
main_version=$("$main/bin/python" -c 'import sys; print(sys.version_info[:2])')
serve_version=$("$serve/bin/python" -c 'import sys; print(sys.version_info[:2])')
if [ "$main_version" != "$serve_version" ]; then
    echo "serve_env: $serve runs Python $serve_version, $main $main_version; the shared fusionrt._C needs one" >&2
    exit 1
fi
# The deployment extra, less onnxscript (exporting, not serving).
extra=$("$serve/bin/python" - <<'PY'
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["onnx"]
print(" ".join(d for d in deps if not d.startswith("onnxscript")))
PY
)
# shellcheck disable=SC2086  # the extra's requirements are one word each
"$serve/bin/python" -m pip install --quiet --disable-pip-version-check "nvidia-pytriton>=0.5" "numpy<2" $extra

serve_site=$("$serve/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp "$main_site/_editable_skbc_fusionrt.py" "$main_site/_editable_skbc_fusionrt.pth" "$serve_site/"
ln -sfn "$main_site/fusionrt" "$serve_site/fusionrt"
# Checked from outside the checkout, so the fusionrt found is the linked one, not ./python by accident.
serve_python=$(cd "$serve" && pwd)/bin/python
(cd / && "$serve_python" -c 'import sys, fusionrt, numpy, onnxruntime
from fusionrt.serving.server import find_install
print(f"serve_env: fusionrt {fusionrt.__version__}, numpy {numpy.__version__}, {find_install(sys.prefix).binary}")')
