"""The backend table (fusionrt.backends): order, reasons a backend cannot run, precisions, and RunOptions."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

import fusionrt
from fusionrt import backends
from fusionrt.backends import BACKENDS, RunOptions
from fusionrt.backends.base import BackendType
from fusionrt.backends.tensorrt import unavailable_reason
from fusionrt.bundle import ImageSpec, Manifest, OutputSpec, TextSpec, Variant
from fusionrt.graph_io import input_specs


def _manifest(torch_program: str | None = "model.pt2") -> Manifest:
    """A valid manifest for the table's questions; no file behind it (nothing here opens a bundle)."""
    return Manifest(
        model_name="m", strategy="late", config={}, inputs=input_specs(8, 32), outputs={}, text=TextSpec(),
        image=ImageSpec(), output=OutputSpec(), variants={"fp32": Variant("model.onnx")}, torch_program=torch_program,
    )


class _Never(BackendType):
    """A backend that can never run, for checking how the table walks its entries."""

    name = "never"
    title = "Never"

    def unavailable(self, manifest, options):
        return "never runs"


def test_auto_tries_tensorrt_then_onnxruntime_then_torch():
    assert backends.NAMES == ("tensorrt", "onnxruntime", "torch")
    assert all(isinstance(kind, BackendType) and kind.name == name for name, kind in BACKENDS.items())


def test_every_backend_says_why_it_cannot_run(monkeypatch):
    def no_module(name, *args, **kwargs):
        return None

    monkeypatch.setattr("importlib.util.find_spec", no_module)
    monkeypatch.setattr(fusionrt.backends.tensorrt, "build_info", lambda: {"tensorrt": None})
    reasons = backends.available(_manifest())
    assert "TensorRT support is not built into this fusionrt" in reasons["tensorrt"]
    assert reasons["onnxruntime"] == "onnxruntime is not installed (pip install fusionrt[onnx])"
    assert reasons["torch"] == "torch is not installed (pip install fusionrt[train])"
    with pytest.raises(RuntimeError, match="no backend can run this bundle here: tensorrt: .*; onnxruntime: .*; torch: "):
        backends.choose(_manifest())


def test_torch_needs_the_torch_program():
    pytest.importorskip("torch")
    assert backends.unavailable("torch", _manifest(torch_program=None)) == "the bundle has no torch program (model.pt2)"
    assert backends.unavailable("torch", _manifest()) is None


@pytest.mark.parametrize("name", list(BACKENDS))
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_a_precision_the_bundle_lacks_is_a_reason_not_an_error(name, precision):
    why = backends.unavailable(name, _manifest(), RunOptions(precision=precision))
    assert why == f"the bundle has no {precision!r} variant; it has ['fp32']"


def test_onnxruntime_names_the_device_it_cannot_use():
    pytest.importorskip("onnxruntime")
    assert backends.unavailable("onnxruntime", _manifest()) is None  # the default device: cpu
    why = backends.unavailable("onnxruntime", _manifest(), RunOptions(device="meta"))
    assert why == "the onnxruntime backend runs on 'cpu' / 'cuda' devices, got device 'meta'"
    with pytest.raises(ValueError, match="device is 'tpu', expected 'cpu', 'cuda', 'cuda:N'"):
        RunOptions(device="tpu")


def test_choose_skips_what_cannot_run_and_says_why(monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(backends, "BACKENDS", {"never": _Never(), "onnxruntime": BACKENDS["onnxruntime"]})
    assert backends.choose(_manifest()) == ("onnxruntime", "never: never runs")
    monkeypatch.setattr(backends, "BACKENDS", {"onnxruntime": BACKENDS["onnxruntime"], "never": _Never()})
    assert backends.choose(_manifest()) == ("onnxruntime", "first choice")


def test_tensorrt_reason_is_the_backends():
    assert backends.unavailable("tensorrt", _manifest()) == unavailable_reason()


def test_precisions_come_from_the_table():
    assert backends.supports("onnxruntime", "int8") and backends.supports("tensorrt", "fp16")
    assert backends.supports("torch", "fp32") and not backends.supports("torch", "fp16")
    assert BACKENDS["torch"].precisions == ("fp32",)
    assert "runs model.pt2 in fp32, got precision 'int8'" in BACKENDS["torch"].precision_issue("int8")
    assert BACKENDS["onnxruntime"].precision_issue("int8") is None


def test_default_devices():
    assert {name: kind.device(RunOptions()) for name, kind in BACKENDS.items()} == {
        "tensorrt": "cuda", "onnxruntime": "cpu", "torch": "cpu"
    }
    assert BACKENDS["tensorrt"].device(RunOptions(device="cuda:1")) == "cuda:1"


def test_unknown_backend_lists_the_table():
    with pytest.raises(ValueError, match=r"unknown backend 'tflite', expected 'auto' or one of \['tensorrt', "):
        backends.unavailable("tflite", _manifest())
    with pytest.raises(ValueError, match="unknown backend 'tflite'"):
        backends.supports("tflite", "fp32")


def test_execution_modes_belong_to_their_backend(tmp_path):
    with pytest.raises(ValueError, match="execution 'branches' is an ONNX Runtime mode; the torch backend runs 'sequential'"):
        backends.open_backend("torch", tmp_path, _manifest(), RunOptions(execution="branches"))
    with pytest.raises(ValueError, match="the torch backend runs model.pt2 in fp32"):
        backends.open_backend("torch", tmp_path, _manifest(), RunOptions(precision="int8"))


def test_the_table_imports_no_framework():
    # Asking every backend why it cannot run must not load torch, onnxruntime or tensorrt.
    code = (
        "import sys; from fusionrt import backends, bundle, graph_io; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnxruntime', 'tensorrt', 'onnx')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(precision="bf16"), r"unknown precision 'bf16', expected one of \['fp32', 'fp16', 'int8'\]"),
        (dict(execution="fast"), r"unknown execution 'fast', expected one of \['auto', 'sequential', 'parallel', "),
        (dict(threads=0), "threads is 0, expected None or a positive integer"),
        (dict(threads=True), "threads is True, expected None or a positive integer"),
        (dict(threads=2.0), "threads is 2.0, expected None or a positive integer"),
        (dict(device=""), "device is '', expected 'cpu', 'cuda', 'cuda:N'"),
        (dict(device=0), "device is 0, expected 'cpu', 'cuda', 'cuda:N'"),
        (dict(device="cuda:-1"), r"device is 'cuda:-1', expected 'cpu', 'cuda', 'cuda:N' \(N >= 0"),
    ],
)
def test_run_options_are_validated_once_made(changes, message):
    with pytest.raises(ValueError, match=message):
        RunOptions(**changes)
    with pytest.raises(ValueError, match=message):
        RunOptions().replace(**changes)


def test_run_options_are_frozen_with_defaults():
    options = RunOptions()
    assert (options.device, options.precision, options.threads, options.execution) == (None, "fp32", None, "auto")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.precision = "int8"
    assert options.replace(threads=4) == RunOptions(threads=4)
