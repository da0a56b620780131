// The AVX2+FMA+F16C family of linear_family.h: 8 lanes; q4_0 in panels through q4_0_avx2.h.
#include "framework/kernels/linear_family.h"

#if defined(__x86_64__)
#include "framework/kernels/q4_0_avx2.h"

namespace cb::kernels::family {
namespace {

using F = WeightFormat;

#define CB_AVX2 [[gnu::target("avx2,fma,f16c")]]

CB_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Elements [c, c+8) of a dense stored row.
template <F Fmt>
CB_AVX2 inline __m256 dense8(const uint8_t* w, int64_t c) {
  if constexpr (Fmt == F::f32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(w) + c);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * c));
    if constexpr (Fmt == F::bf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    else return _mm256_cvtph_ps(h);
  }
}

// A block's 32 quantized values as 4 x 8 floats (elements 0-7, 8-15, 16-23, 24-31).
template <F Fmt>
CB_AVX2 inline void block8x4(const uint8_t* blk, __m256 q[4]) {
  if constexpr (Fmt == F::q8_0) {
    for (int k = 0; k < 4; ++k)
      q[k] =
          _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 2 + 8 * k))));
  } else {
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    const __m128i nib = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    const __m128i lo = _mm_sub_epi8(_mm_and_si128(qs, nib), eight);                     // elements 0-15
    const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(qs, 4), nib), eight);  // elements 16-31
    q[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    q[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    q[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    q[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
  }
}

CB_AVX2 inline __m256 block_scale(const uint8_t* blk) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  return _mm256_set1_ps(_cvtsh_ss(h));
}

// acc[i] += d · Σ_j q_j x[i][off + j] over one block.
template <F Fmt, int NM>
CB_AVX2 inline void block_dot(const uint8_t* blk, const float* const* x, int64_t off, __m256* acc) {
  __m256 q[4];
  block8x4<Fmt>(blk, q);
  const __m256 d = block_scale(blk);
  for (int i = 0; i < NM; ++i) {
    const float* xi = x[i] + off;
    __m256 s = _mm256_mul_ps(q[0], _mm256_loadu_ps(xi));
    s = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(xi + 8), s);
    s = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(xi + 16), s);
    s = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(xi + 24), s);
    acc[i] = _mm256_fmadd_ps(d, s, acc[i]);
  }
}

template <F Fmt, int NM>
CB_AVX2 void dot_avx2(const uint8_t* w, const float* const* x, int64_t cols, float* out) {
  // Two accumulator sets (even/odd blocks, or the two halves of 16 columns) hide the FMA latency.
  __m256 a0[NM], a1[NM];
  for (int i = 0; i < NM; ++i) a0[i] = a1[i] = _mm256_setzero_ps();
  if constexpr (Fmt == F::q8_0 || Fmt == F::q4_0) {
    const int64_t blocks = cols / kQuantBlock;
    int64_t b = 0;
    for (; b + 2 <= blocks; b += 2) {
      for (int64_t l = 0; l < 2 * block_bytes(Fmt); l += 64)
        prefetch_line(w + b * block_bytes(Fmt) + kPrefetchBytes + l);
      block_dot<Fmt, NM>(w + b * block_bytes(Fmt), x, b * kQuantBlock, a0);
      block_dot<Fmt, NM>(w + (b + 1) * block_bytes(Fmt), x, (b + 1) * kQuantBlock, a1);
    }
    if (b < blocks) block_dot<Fmt, NM>(w + b * block_bytes(Fmt), x, b * kQuantBlock, a0);
    for (int i = 0; i < NM; ++i) out[i] = hsum(_mm256_add_ps(a0[i], a1[i]));
  } else {
    constexpr int64_t elem = Fmt == F::f32 ? 4 : 2;
    int64_t c = 0;
    for (; c + 16 <= cols; c += 16) {
      // The 16-bit rows ask for one line ahead per 64 bytes; the fp32 rows for none: there the hardware
      // prefetcher alone streamed faster (docs/kernels.md: the row kernels' prefetch).
      if (elem == 2 && c % 32 == 0) prefetch_line(w + c * elem + kPrefetchBytes);
      const __m256 w0 = dense8<Fmt>(w, c), w1 = dense8<Fmt>(w, c + 8);
      for (int i = 0; i < NM; ++i) {
        a0[i] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[i] + c), a0[i]);
        a1[i] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[i] + c + 8), a1[i]);
      }
    }
    if (c + 8 <= cols) {
      const __m256 w0 = dense8<Fmt>(w, c);
      for (int i = 0; i < NM; ++i) a0[i] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[i] + c), a0[i]);
      c += 8;
    }
    for (int i = 0; i < NM; ++i) out[i] = hsum(_mm256_add_ps(a0[i], a1[i]));
    for (; c < cols; ++c) {  // an explicit FMA: the same rounding whatever the compiler contracts
      const float wc = dense_at<Fmt>(w, c);
      for (int i = 0; i < NM; ++i) out[i] = std::fma(wc, x[i][c], out[i]);
    }
  }
}

template <F Fmt>
CB_AVX2 void dequant_avx2(const uint8_t* w, int64_t cols, float* out) {
  if constexpr (Fmt == F::q8_0 || Fmt == F::q4_0) {
    for (int64_t b = 0; b < cols / kQuantBlock; ++b, w += block_bytes(Fmt), out += kQuantBlock) {
      __m256 q[4];
      block8x4<Fmt>(w, q);
      const __m256 d = block_scale(w);
      for (int k = 0; k < 4; ++k) _mm256_storeu_ps(out + 8 * k, _mm256_mul_ps(d, q[k]));
    }
  } else {
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8) _mm256_storeu_ps(out + c, dense8<Fmt>(w, c));
    for (; c < cols; ++c) out[c] = dense_at<Fmt>(w, c);
  }
}
#undef CB_AVX2

}  // namespace

FormatKernels avx2_kernels(WeightFormat f) {
  return for_format(f, []<F Fmt>() {
    FormatKernels out{{dot_avx2<Fmt, 1>, dot_avx2<Fmt, 2>, dot_avx2<Fmt, 3>, dot_avx2<Fmt, 4>},
                      dequant_avx2<Fmt>,
                      dot_row<dot_avx2<Fmt, 1>>};
    if constexpr (Fmt == F::q4_0) {
      out.panel_x = PanelX::avx2;
      out.panel_dequant = q4_0_avx2_panel_dequant;
    }
    return out;
  });
}

}  // namespace cb::kernels::family
#endif
