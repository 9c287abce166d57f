// Run-time ISA selection for the hot CPU loops without building the whole library per ISA.
//
// x86-64 builds target the baseline ISA (SSE2) so one wheel runs everywhere; a function marked
// FUSIONRT_SIMD_CLONES is also compiled for x86-64-v3 (AVX2 + FMA) and x86-64-v4 (AVX-512), and the
// dynamic loader binds the best one the CPU supports (ifunc). Inline helpers it calls are compiled
// into each clone. Elsewhere (aarch64, where NEON is baseline) there is one version.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && defined(__ELF__)
#define FUSIONRT_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FUSIONRT_SIMD_CLONES
#endif

namespace fusionrt {

// Whether the clones run with 16-lane float registers (AVX-512), for loops whose register tiling
// depends on the vector width.
inline bool cpu_has_avx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

}  // namespace fusionrt
