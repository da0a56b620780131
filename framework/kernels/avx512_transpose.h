// A 16 x 16 fp32 transpose in AVX-512 registers, shared by the kernels that turn columns into rows
// (linear_avx512.cpp's panel dequantisation) or rows into columns (gemm.cpp's packing). x86-64 only; callers
// run it where the CPU has AVX-512F.
#pragma once
#if defined(__x86_64__)
#include <immintrin.h>

namespace cb::kernels {

// In place: v[k] (16 lanes) -> lane k of every v[j], i.e. row j of the transpose.
[[gnu::target("avx512f")]] inline void transpose16x16(__m512 v[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {  // per 128-bit lane L: t[i] = rows i, i+1 at columns 4L, 4L+1 interleaved
    t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
  }
  for (int g = 0; g < 16; g += 4) {  // u[g + k], lane L: rows g..g+3 at column 4L + k
    v[g] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
    v[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xEE);
    v[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
    v[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
  }
  for (int k = 0; k < 4; ++k) {  // 4 x 4 transpose of the 128-bit lanes of u[k], u[4+k], u[8+k], u[12+k]
    const __m512 a = _mm512_shuffle_f32x4(v[k], v[4 + k], 0x88), b = _mm512_shuffle_f32x4(v[k], v[4 + k], 0xDD);
    const __m512 c = _mm512_shuffle_f32x4(v[8 + k], v[12 + k], 0x88),
                 e = _mm512_shuffle_f32x4(v[8 + k], v[12 + k], 0xDD);
    t[k] = _mm512_shuffle_f32x4(a, c, 0x88);
    t[8 + k] = _mm512_shuffle_f32x4(a, c, 0xDD);
    t[4 + k] = _mm512_shuffle_f32x4(b, e, 0x88);
    t[12 + k] = _mm512_shuffle_f32x4(b, e, 0xDD);
  }
  for (int i = 0; i < 16; ++i) v[i] = t[i];
}

}  // namespace cb::kernels
#endif
