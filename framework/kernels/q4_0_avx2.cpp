#include "framework/kernels/q4_0_avx2.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "framework/error.h"
#include "framework/kernels/weight_format.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace cb::kernels {

#if defined(__x86_64__)
namespace {

#define CB_AVX2 [[gnu::target("avx2,fma,f16c")]]

constexpr int kLargestExponent = 30;  // |X| < 2^30: d1 = ⌊X / 2^15⌋ stays within 16 bits

// The block's 32 elements as remainders only (scale 1, all digits 0): the fp32 path for all of them.
void prepare_as_rest(const float* x, Q4Avx2Block& b) {
  std::memset(&b, 0, sizeof b);
  b.rest.take_all(x);
}

CB_AVX2 float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

CB_AVX2 void prepare_block(const float* x, Q4Avx2Block& b) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 limit = _mm256_set1_ps(std::ldexp(1.f, kLargestExponent));
  __m256 v[4], mx = _mm256_setzero_ps();
  int over = 0;
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    const __m256 a = _mm256_and_ps(v[k], abs_mask);
    over |= _mm256_movemask_ps(_mm256_cmp_ps(a, limit, _CMP_NLT_UQ));  // >= 2^30, infinite or NaN
    mx = _mm256_max_ps(mx, a);
  }
  if (over) return prepare_as_rest(x, b);
  b.rest.count = 0;
  b.rest.inv_scale = 1.f;
  const float top = hmax(mx);
  if (top == 0.f) {
    std::memset(b.pairs, 0, sizeof b.pairs);
    b.start[0] = b.start[1] = 0;
    return;
  }
  const int s = q4_x_block_exponent(top, kLargestExponent);
  b.rest.inv_scale = std::ldexp(1.f, -s);
  const __m256 scale = _mm256_set1_ps(std::ldexp(1.f, s));
  __m256i d[2][4];
  for (int k = 0; k < 4; ++k) {
    const __m256 y = _mm256_mul_ps(v[k], scale);  // exact: a power of two, no overflow or underflow
    const __m256 yr = _mm256_round_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 r = _mm256_sub_ps(y, yr);  // exact
    if (int mask = _mm256_movemask_ps(_mm256_cmp_ps(r, _mm256_setzero_ps(), _CMP_NEQ_UQ))) {
      alignas(32) float rv[8];
      _mm256_store_ps(rv, r);
      for (; mask; mask &= mask - 1) {
        const int lane = __builtin_ctz(static_cast<unsigned>(mask));
        b.rest.add(8 * k + lane, rv[lane]);
      }
    }
    const __m256i X = _mm256_cvtps_epi32(yr);
    d[0][k] = _mm256_and_si256(X, _mm256_set1_epi32(0x7FFF));  // the low 15 bits, 0 <= d0 < 2^15
    d[1][k] = _mm256_srai_epi32(X, 15);                        // ⌊X / 2^15⌋: X = d0 + 2^15·d1
  }
  alignas(32) int32_t digit[2][32];  // digit[k][j]: d_k of element j
  for (int k = 0; k < 2; ++k)
    for (int q = 0; q < 4; ++q) _mm256_store_si256(reinterpret_cast<__m256i*>(&digit[k][8 * q]), d[k][q]);
  for (int k = 0; k < 2; ++k) {
    int32_t sum = 0;
    for (int j = 0; j < 32; ++j) sum += digit[k][j];
    b.start[k] = -8 * sum;
    for (int c = 0; c < 4; ++c)
      for (int m = 0; m < 4; ++m) {  // elements e (byte 0 or 1) and e + 2 (byte 2 or 3)
        const int e = 4 * c + m % 2 + (m < 2 ? 0 : 16);
        b.pairs[k][c][m] = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(digit[k][e])) |
                                                static_cast<uint32_t>(static_cast<uint16_t>(digit[k][e + 2])) << 16);
      }
  }
}

constexpr int64_t kPanelBlock = kPanelRows * block_bytes(WeightFormat::q4_0);  // 288 bytes

// u[i][h][k] += the lanes' q·d_k over block b of a panel (h: rows 8h..8h+7), then acc[i][h] += d ⊙ the sum.
template <int NM>
CB_AVX2 inline void panel_block(const uint8_t* pb, const Q4Avx2Block* const* x, int64_t b, __m256 (*acc)[2]) {
  const uint8_t* quants = pb + 2 * kPanelRows;
  const __m256i nibbles = _mm256_set1_epi32(0x000F000F);  // bits 0-3 and 16-19: two 16-bit elements
  // Chunk by chunk, one nibble pair at a time for both halves, so that few registers are live (AVX2 has
  // 16). Left to itself GCC spilled the lanes to the stack (80 cycles a panel's block on Zen 3, 62
  // without): the loops must be unrolled for the lanes to stay in registers, and the empty asm after each
  // pair of adds pins them there in order, else GCC reassociates the sums into trees and hoists the products.
  __m256i u[NM][2][2];
  for (int i = 0; i < NM; ++i)
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 2; ++k) u[i][h][k] = _mm256_set1_epi32(x[i][b].start[k]);
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(quants + 64 * c));
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(quants + 64 * c + 32));
#pragma GCC unroll 4
    for (int m = 0; m < 4; ++m) {
      // m = 3: the top nibble of each 16-bit half, which a 16-bit shift brings down alone.
      constexpr int kShift[4] = {0, 8, 4, 12};
      const __m256i p0 =
          m == 3 ? _mm256_srli_epi16(v0, 12) : _mm256_and_si256(_mm256_srli_epi32(v0, kShift[m]), nibbles);
      const __m256i p1 =
          m == 3 ? _mm256_srli_epi16(v1, 12) : _mm256_and_si256(_mm256_srli_epi32(v1, kShift[m]), nibbles);
      for (int i = 0; i < NM; ++i)
        for (int k = 0; k < 2; ++k) {
          const __m256i xd = _mm256_set1_epi32(x[i][b].pairs[k][c][m]);
          u[i][0][k] = _mm256_add_epi32(u[i][0][k], _mm256_madd_epi16(p0, xd));
          u[i][1][k] = _mm256_add_epi32(u[i][1][k], _mm256_madd_epi16(p1, xd));
          asm("" : "+x"(u[i][0][k]), "+x"(u[i][1][k]));  // see above: no reassociation, no hoisting
        }
    }
  }
  const __m256 d[2] = {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pb))),
                       _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pb + 16)))};
  for (int i = 0; i < NM; ++i) {
    const Q4Avx2Block& xb = x[i][b];
    // u0 + 2^15·u1: each below 2^24, exact in fp32; one rounding joins them.
    __m256 sum[2];
    for (int h = 0; h < 2; ++h)
      sum[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(u[i][h][1]), _mm256_set1_ps(32768.f), _mm256_cvtepi32_ps(u[i][h][0]));
    // Both halves in one loop over the remainders: its trip count varies from block to block.
    for (int t = 0; t < xb.rest.count; ++t) {
      const int j = xb.rest.col[t];
      const uint8_t* chunk = quants + 64 * q4_0_panel_chunk(j);
      const __m128i bit = _mm_cvtsi32_si128(q4_0_panel_bit(j));
      const __m256 r = _mm256_set1_ps(xb.rest.value[t]);
      for (int h = 0; h < 2; ++h) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(chunk + 32 * h));
        const __m256i q = _mm256_and_si256(_mm256_srl_epi32(v, bit), _mm256_set1_epi32(15));
        sum[h] = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(q), _mm256_set1_ps(8.f)), r, sum[h]);
      }
    }
    // d·sum first, then the exact power of two: no intermediate underflow for a block of tiny x.
    for (int h = 0; h < 2; ++h)
      acc[i][h] = _mm256_fmadd_ps(_mm256_mul_ps(d[h], sum[h]), _mm256_set1_ps(xb.rest.inv_scale), acc[i][h]);
  }
}

template <int NM>
CB_AVX2 void panel_dot(const uint8_t* panel, const Q4Avx2Block* const* x, int64_t cols, float* out) {
  __m256 acc[NM][2];
  for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
  const int64_t ahead = panel_prefetch_bytes();
  for (int64_t b = 0; b < cols / kQuantBlock; ++b) {
    const uint8_t* pb = panel + b * kPanelBlock;
    for (int64_t l = 0; l < kPanelBlock; l += 64)
      _mm_prefetch(reinterpret_cast<const char*>(pb + ahead + l), _MM_HINT_T0);
    panel_block<NM>(pb, x, b, acc);
  }
  for (int i = 0; i < NM; ++i)
    for (int h = 0; h < 2; ++h) _mm256_storeu_ps(out + kPanelRows * i + 8 * h, acc[i][h]);
}

// Row r of each half: its lane of each chunk c broadcast, shifted so that nibble i lands in lane i
// (elements 4c..4c+3 from the low nibbles, 4c+16..4c+19 from the high ones), scaled (d·(q − 8): exact, the
// bits of unpack_weight's) and stored.
CB_AVX2 void panel_dequant(const uint8_t* panel, int64_t cols, float* out, int64_t ld) {
  const __m256i shifts = _mm256_setr_epi32(0, 8, 16, 24, 4, 12, 20, 28), nibble = _mm256_set1_epi32(15);
  for (int64_t b = 0; b < cols / kQuantBlock; ++b) {
    const uint8_t* pb = panel + b * kPanelBlock;
    for (int h = 0; h < 2; ++h) {
      const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pb + 16 * h)));
      __m256i v[4];
      for (int c = 0; c < 4; ++c)
        v[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb + 2 * kPanelRows + 64 * c + 32 * h));
      for (int r = 0; r < 8; ++r) {
        const __m256i lane = _mm256_set1_epi32(r);
        const __m256 dr = _mm256_permutevar8x32_ps(d, lane);
        float* row = out + (8 * h + r) * ld + b * kQuantBlock;
        for (int c = 0; c < 4; ++c) {
          const __m256i q =
              _mm256_and_si256(_mm256_srlv_epi32(_mm256_permutevar8x32_epi32(v[c], lane), shifts), nibble);
          const __m256 w = _mm256_mul_ps(dr, _mm256_sub_ps(_mm256_cvtepi32_ps(q), _mm256_set1_ps(8.f)));
          _mm_storeu_ps(row + 4 * c, _mm256_castps256_ps128(w));
          _mm_storeu_ps(row + 16 + 4 * c, _mm256_extractf128_ps(w, 1));
        }
      }
    }
  }
}

#undef CB_AVX2

}  // namespace

void q4_0_avx2_prepare(const float* x, int64_t cols, Q4Avx2Block* out) {
  for (int64_t b = 0; b < cols / kQuantBlock; ++b) prepare_block(x + b * kQuantBlock, out[b]);
}

void q4_0_avx2_panel_dot(int n, const uint8_t* panel, const Q4Avx2Block* const* x, int64_t cols, float* out) {
  // Two rows of x at most per pass: the lanes of more would not fit AVX2's 16 registers.
  switch (n) {
    case 1: return panel_dot<1>(panel, x, cols, out);
    case 2: return panel_dot<2>(panel, x, cols, out);
    case 3: panel_dot<2>(panel, x, cols, out); return panel_dot<1>(panel, x + 2, cols, out + 2 * kPanelRows);
    case 4: panel_dot<2>(panel, x, cols, out); return panel_dot<2>(panel, x + 2, cols, out + 2 * kPanelRows);
  }
  fail("q4_0_avx2_panel_dot: {} rows of x (1 to 4)", n);
}

void q4_0_avx2_panel_dequant(const uint8_t* panel, int64_t cols, float* out, int64_t ld) {
  panel_dequant(panel, cols, out, ld);
}

#else

void q4_0_avx2_prepare(const float*, int64_t, Q4Avx2Block*) { fail("q4_0_avx2_prepare: x86-64 only"); }
void q4_0_avx2_panel_dot(int, const uint8_t*, const Q4Avx2Block* const*, int64_t, float*) {
  fail("q4_0_avx2_panel_dot: x86-64 only");
}
void q4_0_avx2_panel_dequant(const uint8_t*, int64_t, float*, int64_t) { fail("q4_0_avx2_panel_dequant: x86-64 only"); }

#endif

}  // namespace cb::kernels
