"""The fp16 / bf16 conversions shared by the CPU and CUDA kernels, bit for bit against numpy / torch."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrt._C import testing


def _special_floats() -> np.ndarray:
    half = np.finfo(np.float16)
    values = [0.0, -0.0, np.inf, -np.inf, 65504.0, 65519.99, 65520.0, 1e6, float(half.tiny), float(half.smallest_subnormal),
              float(half.smallest_subnormal) / 2, float(half.smallest_subnormal) * 0.75, 1.0 + 2**-11, 1.0 + 3 * 2**-11,
              2.0**-24 * 1.5, 2.0**-25, 1e-30]
    return np.array(values + [-v for v in values], dtype=np.float32)


def test_half_to_float_is_exact_for_every_half():
    bits = np.arange(2**16, dtype=np.uint16)
    ours = testing.half_bits_to_float(bits)
    with np.errstate(invalid="ignore"):  # NaN halves: some numpy builds (aarch64) warn on the cast
        expected = bits.view(np.float16).astype(np.float32)
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(ours), nan)
    assert np.array_equal(ours[~nan].view(np.uint32), expected[~nan].view(np.uint32))


def test_float_to_half_rounds_to_nearest_even_like_numpy(rng):
    values = np.concatenate([
        _special_floats(),
        rng.standard_normal(100_000).astype(np.float32) * np.float32(10.0) ** rng.integers(-8, 6, 100_000),
        # every half-way point between adjacent halves, where ties-to-even decides
        ((np.arange(2**15 - 1025, dtype=np.uint16).view(np.float16).astype(np.float64)
          + np.arange(1, 2**15 - 1024, dtype=np.uint16).view(np.float16).astype(np.float64)) / 2).astype(np.float32),
    ]).astype(np.float32)
    ours = testing.float_to_half_bits(values)
    with np.errstate(over="ignore"):  # numpy warns where it rounds to inf, as it should
        expected = values.astype(np.float16).view(np.uint16)
    assert np.array_equal(ours, expected)


def test_float_to_half_keeps_nan_a_nan():
    bits = testing.float_to_half_bits(np.array([np.nan, -np.nan], np.float32))
    assert np.isnan(bits.view(np.float16)).all()


def test_bfloat16_rounds_to_nearest_even_like_the_bit_rule(rng):
    # The numpy reference: bfloat16 is float32's upper half, rounded to nearest even on the lower half.
    values = np.concatenate([_special_floats(), rng.standard_normal(100_000).astype(np.float32) * 1e3])
    bits = values.view(np.uint32).astype(np.uint64)
    expected = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    ours = testing.float_to_bfloat16_bits(values)
    assert np.array_equal(ours, expected)
    back = testing.bfloat16_bits_to_float(ours)
    assert np.array_equal(back.view(np.uint32), expected.astype(np.uint32) << 16)


def test_bfloat16_round_trip_matches_torch(rng):
    torch = pytest.importorskip("torch")
    values = np.concatenate([_special_floats(), rng.standard_normal(100_000).astype(np.float32) * 1e3,
                             np.array([np.nan], np.float32)])
    ours = testing.float_to_bfloat16_bits(values)
    expected = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    finite = ~np.isnan(values)
    assert np.array_equal(ours[finite], expected[finite])
    back = testing.bfloat16_bits_to_float(ours)
    assert np.isnan(back[~finite]).all()
    assert np.array_equal(back[finite], torch.from_numpy(values[finite]).to(torch.bfloat16).float().numpy())
