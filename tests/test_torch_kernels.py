"""Which kernels the torch ops run: the C++ ones of libfusionrt_torch when fusionrt was built against
the running torch, else Python kernels over fusionrt._C, which must pass the same op tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fusionrt

torch = pytest.importorskip("torch")
import fusionrt.ops as ops  # noqa: E402

OP_TEST_FILES = ["tests/test_concat_layernorm.py", "tests/test_attention.py"]
REPOSITORY = Path(__file__).resolve().parents[1]


def registered_kernel(op: str, device_key: str) -> str:
    """The dispatcher's line for `op`'s kernel at `device_key` (empty when none is registered)."""
    lines = torch._C._dispatch_dump(f"fusionrt::{op}").splitlines()
    return next((line for line in lines if line.startswith(f"{device_key}: ")), "")


def python_kernels_forced() -> bool:
    return os.environ.get("FUSIONRT_TORCH_KERNELS") == "python"


@pytest.mark.skipif(python_kernels_forced(), reason="FUSIONRT_TORCH_KERNELS=python is set")
@pytest.mark.parametrize("op", ["fused_concat_layernorm", "multihead_attention"])
def test_a_build_against_this_torch_registers_cpp_kernels(op):
    built_for = fusionrt.build_info()["torch"]
    if built_for is None:
        pytest.skip("fusionrt was built without torch importable; its ops use Python kernels")
    assert built_for == torch.__version__, "fusionrt was built against another torch; rebuild it"
    assert ops.KERNELS == "compiled"
    # C++ kernels are called unboxed; a Python kernel is only ever boxed.
    assert "kernels.cpp" in registered_kernel(op, "CPU") and "unboxed" in registered_kernel(op, "CPU")
    expected_cuda_source = "kernels.cpp" if fusionrt.build_info()["torch_cuda_kernels"] else "ops.py"
    assert expected_cuda_source in registered_kernel(op, "CUDA")


def test_kernels_built_for_another_torch_are_not_loaded(monkeypatch):
    info = dict(fusionrt.build_info(), torch="1.0.0+elsewhere")
    monkeypatch.setattr(ops._C, "build_info", lambda: info)
    monkeypatch.delenv("FUSIONRT_TORCH_KERNELS", raising=False)
    with pytest.warns(UserWarning, match=r"were built for torch 1\.0\.0\+elsewhere, but .* runs; using its Python"):
        assert ops._load_compiled_kernels() is False


def test_a_library_that_fails_to_load_falls_back_to_python_kernels(monkeypatch, tmp_path):
    info = dict(fusionrt.build_info(), torch=torch.__version__)
    monkeypatch.setattr(ops._C, "build_info", lambda: info)
    monkeypatch.setattr(ops, "_COMPILED_KERNELS", tmp_path / "libfusionrt_torch.so")
    monkeypatch.delenv("FUSIONRT_TORCH_KERNELS", raising=False)
    (tmp_path / "libfusionrt_torch.so").write_bytes(b"not a shared library")
    with pytest.warns(UserWarning, match=r"C\+\+ torch kernels failed to load \(.*\); using its Python"):
        assert ops._load_compiled_kernels() is False


def test_the_environment_can_force_python_kernels(monkeypatch):
    monkeypatch.setenv("FUSIONRT_TORCH_KERNELS", "python")
    assert ops._load_compiled_kernels() is False


@pytest.mark.skipif(python_kernels_forced(), reason="this is the run under FUSIONRT_TORCH_KERNELS=python")
def test_python_kernels_pass_the_op_tests():
    # A fresh process, since a dispatcher registration cannot be undone within one.
    environment = dict(os.environ, FUSIONRT_TORCH_KERNELS="python")
    probe = "import fusionrt.ops as ops; assert ops.KERNELS == 'python', ops.KERNELS"
    subprocess.run([sys.executable, "-c", probe], env=environment, check=True)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *OP_TEST_FILES],
        env=environment,
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
