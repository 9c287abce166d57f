"""The TensorRT backend's parts that run anywhere: why it cannot run (each missing piece named), device
strings, and the dtype that lets numpy and torch feeds through the Session's check. Engines themselves
are tested in test_tensorrt.py (TensorRT and a GPU needed)."""

from __future__ import annotations

import numpy as np
import pytest

import fusionrt
from fusionrt.backends import tensorrt as backend
from fusionrt.backends.tensorrt.backend import TensorRTBackend, device_index
from fusionrt.bundle import TensorSpec
from fusionrt.feeds import FeedChecker


@pytest.fixture
def built_with_tensorrt(monkeypatch):
    """This process as a TensorRT build would see it (the facts it checks, not TensorRT itself)."""
    monkeypatch.setattr(backend, "build_info", lambda: fusionrt.build_info() | {"tensorrt": "10.3"})
    monkeypatch.setattr(backend._C, "EngineRunner", object(), raising=False)
    return monkeypatch


def test_without_tensorrt_says_it_is_not_built():
    if hasattr(fusionrt._C, "EngineRunner"):
        pytest.skip("this fusionrt is built with TensorRT")
    assert "TensorRT support is not built into this fusionrt" in backend.unavailable_reason()


def test_built_but_without_a_gpu_says_so(built_with_tensorrt):
    built_with_tensorrt.setattr(backend, "cuda_available", lambda: False)
    assert backend.unavailable_reason() == (
        "this fusionrt is built with TensorRT 10.3, but no CUDA device is usable (no GPU or no driver)"
    )


def test_missing_tensorrt_package_names_the_extra(built_with_tensorrt):
    built_with_tensorrt.setattr(backend, "cuda_available", lambda: True)
    built_with_tensorrt.setattr(backend.importlib.util, "find_spec", lambda name: None)
    assert "pip install fusionrt[trt]" in backend.unavailable_reason()


@pytest.mark.parametrize(("device", "index"), [("cuda", 0), ("cuda:0", 0), ("cuda:3", 3)])
def test_device_index(device, index):
    assert device_index(device) == index


@pytest.mark.parametrize("device", ["cpu", "cuda:x", "gpu:0", "cuda:-1"])
def test_device_index_rejects_other_devices(device):
    with pytest.raises(ValueError, match=f"device '{device}' is not supported by the tensorrt backend"):
        device_index(device)


def test_dtype_equals_numpy_and_torch_spellings():
    torch = pytest.importorskip("torch")
    dtype = TensorRTBackend.dtype("float32")
    assert np.dtype("float32") == dtype and torch.float32 == dtype
    assert np.dtype("float16") != dtype and torch.int64 != dtype and torch.float64 != dtype


def test_feed_check_accepts_numpy_and_torch_feeds():
    torch = pytest.importorskip("torch")
    checker = FeedChecker({"image": TensorSpec("float32", ["batch", 3])}, TensorRTBackend.dtype)
    assert checker.batch_of({"image": np.zeros((2, 3), np.float32)}) == 2
    assert checker.batch_of({"image": torch.zeros(4, 3)}) == 4
    with pytest.raises(TypeError, match="feed 'image' is float64, expected float32"):
        checker.batch_of({"image": torch.zeros(4, 3, dtype=torch.float64)})
    with pytest.raises(TypeError, match="feed 'image' is int32, expected float32"):
        checker.batch_of({"image": np.zeros((4, 3), np.int32)})
