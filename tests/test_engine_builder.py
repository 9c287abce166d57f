"""fusionrt.backends.tensorrt.engine_builder's TensorRT-free rules: which graph and builder flags a precision needs on
TensorRT 10 and 11, and the optimisation profile from the manifest. Building itself is tested in
test_tensorrt.py (needs TensorRT and a GPU)."""

from __future__ import annotations

import importlib.util

import pytest

from fusionrt.bundle import BundleError, ImageSpec, Manifest, OutputSpec, TensorSpec, TextSpec, Variant
from fusionrt.backends.tensorrt.engine_builder import BuildPlan, build_engine, plan_build, profile_shapes, release_version, trt_major

INPUTS = {
    "input_ids": TensorSpec("int64", ["batch", 16]),
    "attention_mask": TensorSpec("int64", ["batch", 16]),
    "image": TensorSpec("float32", ["batch", 3, 32, 32]),
    "presence": TensorSpec("bool", ["batch", 2]),
}


def manifest(variants=("fp32", "fp16", "int8"), plugins=True) -> Manifest:
    def variant(name):
        suffix = "" if name == "fp32" else f".{name}"
        return Variant(f"model{suffix}.onnx", f"model{suffix}.plugins.onnx" if plugins else None)

    return Manifest(
        model_name="late", strategy="late", config={}, inputs=INPUTS,
        outputs={"score": TensorSpec("float32", ["batch"])}, text=TextSpec(), image=ImageSpec(), output=OutputSpec(),
        variants={name: variant(name) for name in variants},
    )


@pytest.mark.parametrize(
    ("precision", "version", "expected"),
    [
        ("fp32", "10.3.0", BuildPlan("model.plugins.onnx", False, (), True)),
        ("fp16", "10.3.0", BuildPlan("model.plugins.onnx", False, ("FP16",), True)),  # fp32 graph + flag
        ("int8", "10.3.0", BuildPlan("model.int8.plugins.onnx", False, ("INT8",), True)),  # Q/DQ + flag
        ("fp32", "11.1.0", BuildPlan("model.plugins.onnx", True, (), True)),
        ("fp16", "11.1.0", BuildPlan("model.fp16.plugins.onnx", True, (), True)),  # the graph decides
        ("int8", "11.1.0", BuildPlan("model.int8.plugins.onnx", True, (), True)),
    ],
)
def test_plan_per_precision_and_tensorrt_generation(precision, version, expected):
    assert plan_build(manifest(), precision, version, plugins=True) == expected


def test_standard_graph_without_the_plugin_library_or_a_plugin_variant():
    assert plan_build(manifest(), "fp16", "11.1.0", plugins=False) == BuildPlan("model.fp16.onnx", True, (), False)
    assert plan_build(manifest(plugins=False), "fp32", "10.3.0", plugins=True).onnx == "model.onnx"


def test_tensorrt_10_fp16_needs_no_fp16_variant():
    assert plan_build(manifest(("fp32",)), "fp16", "10.3.0", plugins=True).flags == ("FP16",)


@pytest.mark.parametrize(("precision", "version"), [("fp16", "11.1.0"), ("int8", "10.3.0"), ("int8", "11.1.0")])
def test_missing_variant_is_a_bundle_error(precision, version):
    with pytest.raises(BundleError, match=f"no {precision} variant.*TensorRT {version}.*has \\['fp32'\\]"):
        plan_build(manifest(("fp32",)), precision, version, plugins=True)


def test_unknown_precision():
    with pytest.raises(ValueError, match="precision is 'fp8'"):
        plan_build(manifest(), "fp8", "10.3.0", plugins=True)


def test_versions():
    assert release_version("10.3.0.30") == "10.3.0.30"
    assert release_version("10.3.0.post1") == "10.3.0"
    assert trt_major("11.1.0") == 11
    with pytest.raises(ValueError):
        release_version("dev")


def test_profile_ranges_over_batch_only():
    shapes = profile_shapes(INPUTS, opt_batch=2, max_batch=8)
    assert shapes["image"] == ((1, 3, 32, 32), (2, 3, 32, 32), (8, 3, 32, 32))
    assert shapes["presence"] == ((1, 2), (2, 2), (8, 2))
    assert list(shapes) == list(INPUTS)


def test_profile_refuses_other_symbolic_dims_and_bad_batches():
    with pytest.raises(BundleError, match="input 'input_ids' has the symbolic dim 'seq'"):
        profile_shapes({"input_ids": TensorSpec("int64", ["batch", "seq"])}, 1, 8)
    with pytest.raises(BundleError, match="has the dim -1"):
        profile_shapes({"x": TensorSpec("float32", ["batch", -1])}, 1, 8)
    with pytest.raises(ValueError, match="opt 4 / max 2"):
        profile_shapes(INPUTS, 4, 2)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed")
def test_build_without_tensorrt_names_the_extra(tmp_path):
    with pytest.raises(ImportError, match=r"pip install fusionrt\[trt\]"):
        build_engine(tmp_path)
