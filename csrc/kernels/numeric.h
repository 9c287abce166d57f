// Element types and the per-element arithmetic shared by the CPU and CUDA kernels.
//
// Everything here is `__host__ __device__` and free of CUDA headers, so the CPU kernels run the very
// conversions and reductions that the CUDA kernels run, and CPU tests check them on machines without
// a GPU. 16-bit types are plain bit containers converted in software (round to nearest even), which
// makes CPU and GPU results agree to the bit for the same summation order.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#if defined(__CUDACC__)
#define FUSIONRT_HD __host__ __device__ __forceinline__
#else
#define FUSIONRT_HD inline
#endif

namespace fusionrt {

enum class DType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2, kFloat64 = 3 };

inline const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
    case DType::kFloat64: return "float64";
  }
  return "unknown";
}

// Every element type the kernels compute in, in the order fusionrt lists them.
inline constexpr std::array<DType, 4> kKernelDTypes = {DType::kFloat32, DType::kFloat16, DType::kBFloat16,
                                                       DType::kFloat64};

inline int dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return 4;
    case DType::kFloat16: return 2;
    case DType::kBFloat16: return 2;
    case DType::kFloat64: return 8;
  }
  return 0;
}

struct alignas(2) half_t {
  uint16_t bits;
};
struct alignas(2) bfloat16_t {
  uint16_t bits;
};

FUSIONRT_HD float float_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

FUSIONRT_HD uint32_t bits_from_float(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

FUSIONRT_HD float half_to_float(half_t h) {
  const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  const uint32_t exponent = (h.bits >> 10) & 0x1fu;
  const uint32_t mantissa = h.bits & 0x3ffu;
  if (exponent == 0x1fu) return float_from_bits(sign | 0x7f800000u | (mantissa << 13));  // inf, nan
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float.
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
  }
  return float_from_bits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// Round to nearest even (F. Giesen's float_to_half_fast3_rtne, public domain).
FUSIONRT_HD half_t float_to_half(float f) {
  uint32_t u = bits_from_float(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  u &= 0x7fffffffu;
  uint16_t out;
  if (u >= 0x47800000u) {  // beyond the half range: inf, or nan (kept quiet)
    out = u > 0x7f800000u ? 0x7e00u : 0x7c00u;
  } else if (u < 0x38800000u) {  // subnormal or zero: let float addition do the rounding
    const float denorm_magic = float_from_bits(0x3f000000u);
    out = static_cast<uint16_t>(bits_from_float(float_from_bits(u) + denorm_magic) - 0x3f000000u);
  } else {
    const uint32_t mantissa_odd = (u >> 13) & 1u;
    u += 0xc8000fffu;  // rebias exponent (15 - 127) << 23, plus rounding bias
    u += mantissa_odd;
    out = static_cast<uint16_t>(u >> 13);
  }
  return half_t{static_cast<uint16_t>(out | sign)};
}

FUSIONRT_HD float bfloat16_to_float(bfloat16_t b) {
  return float_from_bits(static_cast<uint32_t>(b.bits) << 16);
}

FUSIONRT_HD bfloat16_t float_to_bfloat16(float f) {
  const uint32_t u = bits_from_float(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bfloat16_t{static_cast<uint16_t>((u >> 16) | 0x40u)};
  const uint32_t rounding_bias = 0x7fffu + ((u >> 16) & 1u);
  return bfloat16_t{static_cast<uint16_t>((u + rounding_bias) >> 16)};
}

// Accumulation type: float32 for every storage type but float64.
template <typename T>
struct Accumulator {
  using type = float;
};
template <>
struct Accumulator<double> {
  using type = double;
};
template <typename T>
using acc_t = typename Accumulator<T>::type;

FUSIONRT_HD float load_acc(float x) { return x; }
FUSIONRT_HD double load_acc(double x) { return x; }
FUSIONRT_HD float load_acc(half_t x) { return half_to_float(x); }
FUSIONRT_HD float load_acc(bfloat16_t x) { return bfloat16_to_float(x); }

template <typename T>
FUSIONRT_HD T store_acc(acc_t<T> x);
template <>
FUSIONRT_HD float store_acc<float>(float x) { return x; }
template <>
FUSIONRT_HD double store_acc<double>(double x) { return x; }
template <>
FUSIONRT_HD half_t store_acc<half_t>(float x) { return float_to_half(x); }
template <>
FUSIONRT_HD bfloat16_t store_acc<bfloat16_t>(float x) { return float_to_bfloat16(x); }

FUSIONRT_HD float reciprocal_sqrt(float x) { return 1.0f / sqrtf(x); }
FUSIONRT_HD double reciprocal_sqrt(double x) { return 1.0 / sqrt(x); }

// Calls `fn(T{})` with the storage type named by `dtype`: the one place that turns a run-time dtype
// into a template argument.
template <typename Fn>
void dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat32: fn(float{}); return;
    case DType::kFloat16: fn(half_t{}); return;
    case DType::kBFloat16: fn(bfloat16_t{}); return;
    case DType::kFloat64: fn(double{}); return;
  }
  throw std::invalid_argument("unsupported dtype code " + std::to_string(static_cast<int>(dtype)));
}

}  // namespace fusionrt
