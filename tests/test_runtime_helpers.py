"""The TensorRT engine runtime's TensorRT-free rules (csrc/tensorrt/runtime/TensorTypes.h, ShapeRules.h):
byte sizes per type, shape signatures, optimisation-profile checks and the buffer growth policy. They
are compiled into every build, so they are tested here without TensorRT or a GPU."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrt import _C

rules = _C.engine_rules
ALIGN = rules.buffer_alignment


def test_tensor_types_follow_nvinfer1_datatype_numbering():
    # nvinfer1::DataType: kFLOAT=0 kHALF=1 kINT8=2 kINT32=3 kBOOL=4 kUINT8=5 kFP8=6 kBF16=7 kINT64=8 kINT4=9 (+ kFP4, kE8M0 in 11)
    assert rules.tensor_types() == [
        "float32", "float16", "int8", "int32", "bool", "uint8", "fp8", "bfloat16", "int64", "int4", "fp4", "e8m0",
    ]
    assert rules.tensor_type_name(8) == "int64"


@pytest.mark.parametrize("value", [-1, 12, 99])
def test_unknown_tensor_type_is_a_value_error(value):
    with pytest.raises(ValueError, match=f"TensorRT data type {value} is unknown"):
        rules.tensor_type_name(value)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8", "int32", "bool", "uint8", "int64"])
@pytest.mark.parametrize("shape", [(1, 64), (8, 3, 224, 224), (5,), (), (0, 7)])
def test_tensor_bytes_match_numpy(dtype, shape):
    assert rules.tensor_bytes(dtype, list(shape)) == np.zeros(shape, dtype).nbytes


def test_sub_byte_types_are_packed_and_rounded_up():
    assert rules.tensor_bytes("int4", [4]) == 2
    assert rules.tensor_bytes("int4", [3]) == 2
    assert rules.tensor_bytes("fp4", [1, 1]) == 1
    assert rules.tensor_bytes("bfloat16", [3, 3]) == 18


def test_tensor_bytes_refuses_unresolved_and_huge_shapes():
    with pytest.raises(ValueError, match=r"shape \(-1, 64\) has an unresolved dim"):
        rules.tensor_bytes("float32", [-1, 64])
    with pytest.raises(ValueError, match="more elements than int64"):
        rules.tensor_bytes("float32", [2**40, 2**40])
    with pytest.raises(ValueError, match="does not fit in memory"):
        rules.tensor_bytes("int64", [2**62])
    with pytest.raises(ValueError, match="unknown tensor type 'float64'"):
        rules.tensor_bytes("float64", [1])


def test_shape_signature_distinguishes_shapes_and_their_split():
    assert rules.shape_signature([[1, 64], [1, 64], [1, 3, 224, 224], [1, 2]]) == "1x64|1x64|1x3x224x224|1x2"
    assert rules.shape_signature([[2, 64]]) != rules.shape_signature([[1, 64]])
    # Same numbers, different tensors: different keys.
    assert rules.shape_signature([[1], [2, 3]]) != rules.shape_signature([[1, 2], [3]])
    assert rules.shape_signature([[], [4]]) == "|4"


def test_profile_shape_within_range_passes():
    rules.check_profile_shape("image", [1, 3, 224, 224], [1, 3, 224, 224], [8, 3, 224, 224])
    rules.check_profile_shape("image", [8, 3, 224, 224], [1, 3, 224, 224], [8, 3, 224, 224])
    rules.check_profile_shape("scalar", [], [], [])


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ([9, 3, 224, 224], r"input 'image' has shape \(9, 3, 224, 224\), expected \(1\.\.8, 3, 224, 224\)"),
        ([0, 3, 224, 224], r"has shape \(0, 3, 224, 224\), expected \(1\.\.8, 3, 224, 224\)"),
        ([1, 3, 225, 224], r"has shape \(1, 3, 225, 224\), expected \(1\.\.8, 3, 224, 224\)"),
        ([1, 3, 224], r"has shape \(1, 3, 224\), expected \(1\.\.8, 3, 224, 224\)"),
    ],
)
def test_profile_shape_outside_range_names_tensor_and_range(shape, expected):
    with pytest.raises(ValueError, match=expected + r" \(the engine's optimisation profile\)"):
        rules.check_profile_shape("image", shape, [1, 3, 224, 224], [8, 3, 224, 224])


def test_unresolved_output_is_refused():
    rules.check_resolved_output("score", [4])
    with pytest.raises(ValueError, match=r"output 'boxes' has shape \(-1, 4\).*data-dependent"):
        rules.check_resolved_output("boxes", [-1, 4])


def test_buffers_grow_aligned_and_never_shrink():
    assert rules.grown_capacity(0, 0) == ALIGN  # even an empty tensor gets a real address
    assert rules.grown_capacity(0, 1) == ALIGN
    assert rules.grown_capacity(0, 1000) == 1024
    assert rules.grown_capacity(1024, 10) == 1024
    assert rules.grown_capacity(1024, 1024) == 1024


def test_buffers_at_least_double_so_batch_growth_reallocates_rarely():
    assert rules.grown_capacity(1024, 1025) == 2048
    assert rules.grown_capacity(1024, 5000) == 5120  # more than double: what is needed, aligned
    capacity, reallocations = 0, 0
    per_sample = 3 * 224 * 224 * 4
    for batch in range(1, 65):  # a batch growing one sample at a time
        grown = rules.grown_capacity(capacity, batch * per_sample)
        reallocations += grown != capacity
        capacity = grown
        assert capacity >= batch * per_sample and capacity % ALIGN == 0
    assert reallocations <= 7  # log2(64) + the first allocation


def test_cuda_device_properties_without_a_usable_device():
    if _C.cuda_available():
        props = _C.cuda_device_properties(0)
        assert set(props) == {"name", "compute_capability", "multiprocessor_count", "integrated", "total_memory"}
        assert len(props["compute_capability"]) == 2
    else:
        with pytest.raises(ValueError, match="CUDA"):
            _C.cuda_device_properties(0)
