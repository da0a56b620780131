// Sixteen elements of a dense stored weight row (fp32, bf16 or IEEE fp16) widened to fp32 in one
// AVX-512 register, shared by linear_avx512.cpp's row kernels and gemm.cpp's packing. x86-64 only; callers run
// it where the CPU has AVX-512F.
#pragma once
#if defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>

#include "framework/kernels/weight_format.h"

namespace cb::kernels {

// GCC 12's AVX-512 headers pass an undefined vector as the merge source of unmasked intrinsics and then
// warn that it is uninitialised (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// Elements [c, c+16) of a dense stored row.
template <WeightFormat Fmt>
[[gnu::target("avx512f")]] inline __m512 dense16(const uint8_t* w, int64_t c) {
  static_assert(Fmt == WeightFormat::f32 || Fmt == WeightFormat::bf16 || Fmt == WeightFormat::f16);
  if constexpr (Fmt == WeightFormat::f32) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(w) + c);
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2 * c));
    if constexpr (Fmt == WeightFormat::bf16)
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    else return _mm512_cvtph_ps(h);
  }
}

#pragma GCC diagnostic pop

}  // namespace cb::kernels
#endif
