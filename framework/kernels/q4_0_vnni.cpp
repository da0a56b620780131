#include "framework/kernels/q4_0_vnni.h"

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

#define CB_VNNI [[gnu::target("avx512f,avx512vnni,avx2,fma,f16c")]]
// GCC 12's AVX-512 headers pass an undefined vector as the merge source of unmasked intrinsics and then
// warn that it is uninitialised (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

constexpr int kLargestExponent = 30;  // |X| < 2^30: four signed bytes hold it with room to round

// The block's 32 elements as remainders only (scale 1, all digits 0): the fp32 path for all of them.
void prepare_as_rest(const float* x, Q4VnniBlock& b) {
  std::memset(&b, 0, sizeof b);
  b.rest.take_all(x);
}

// The lanes of r that are not zero, appended to b's remainders as columns c0 + lane.
CB_VNNI void add_rest(__m512 r, int c0, Q4VnniBlock& b) {
  alignas(64) float v[16];
  _mm512_store_ps(v, r);
  for (unsigned m = _mm512_cmp_ps_mask(r, _mm512_setzero_ps(), _CMP_NEQ_UQ); m; m &= m - 1) {
    const int lane = __builtin_ctz(m);
    b.rest.add(c0 + lane, v[lane]);
  }
}

CB_VNNI void prepare_block(const float* x, Q4VnniBlock& b) {
  const __m512 lo = _mm512_loadu_ps(x), hi = _mm512_loadu_ps(x + 16);
  const __m512 abs_lo = _mm512_abs_ps(lo), abs_hi = _mm512_abs_ps(hi);
  const __m512 limit = _mm512_set1_ps(std::ldexp(1.f, kLargestExponent));
  if (_mm512_cmp_ps_mask(abs_lo, limit, _CMP_NLT_UQ) | _mm512_cmp_ps_mask(abs_hi, limit, _CMP_NLT_UQ))
    return prepare_as_rest(x, b);  // an element >= 2^30, infinite or NaN
  const float mx = _mm512_reduce_max_ps(_mm512_max_ps(abs_lo, abs_hi));
  std::memset(&b, 0, sizeof b);
  b.rest.inv_scale = 1.f;
  if (mx == 0.f) return;
  const int s = q4_x_block_exponent(mx, kLargestExponent);
  b.rest.inv_scale = std::ldexp(1.f, -s);
  const __m512 scale = _mm512_set1_ps(std::ldexp(1.f, s));
  __m512i X[2];
  int32_t digit_sum[4] = {};
  for (int h = 0; h < 2; ++h) {
    const __m512 y = _mm512_mul_ps(h ? hi : lo, scale);  // exact: s >= 0 scales up
    const __m512 yr = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    add_rest(_mm512_sub_ps(y, yr), 16 * h, b);  // y − round(y): exact
    X[h] = _mm512_cvtps_epi32(yr);
    for (int k = 0; k < 4; ++k) {
      // d_k: X's low byte as a signed value; X −= d_k, X /= 256 (exact: X − d_k is a multiple of 256).
      const __m512i d = k < 3 ? _mm512_srai_epi32(_mm512_slli_epi32(X[h], 24), 24) : X[h];
      if (k < 3) X[h] = _mm512_srai_epi32(_mm512_sub_epi32(X[h], d), 8);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(&b.digits[k][4 * h]), _mm512_cvtepi32_epi8(d));
      digit_sum[k] += _mm512_reduce_add_epi32(d);
    }
  }
  for (int k = 0; k < 4; ++k) b.start[k] = -8 * digit_sum[k];
}

// acc[i] += d ⊙ Σ_j (q[:, j] − 8)·x[i][j] over block b of a panel (16 rows in the lanes).
template <int NM>
CB_VNNI inline void panel_block(const uint8_t* pb, const Q4VnniBlock* const* x, int64_t b, __m512* acc) {
  const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb)));
  const uint8_t* quants = pb + 2 * kPanelRows;
  const __m512i nibble = _mm512_set1_epi32(0x0F0F0F0F);
  __m512i u[NM][4];  // u[i][k] = Σ_j (q_j − 8)·d_k,j of x row i, per row lane
  for (int i = 0; i < NM; ++i)
    for (int k = 0; k < 4; ++k) u[i][k] = _mm512_set1_epi32(x[i][b].start[k]);
  for (int c = 0; c < 4; ++c) {  // chunk c: bytes 4c..4c+3 of each row, elements 4c.. (low), 4c+16.. (high)
    const __m512i v = _mm512_loadu_si512(quants + 64 * c);
    const __m512i q_lo = _mm512_and_si512(v, nibble), q_hi = _mm512_and_si512(_mm512_srli_epi32(v, 4), nibble);
    for (int i = 0; i < NM; ++i)
      for (int k = 0; k < 4; ++k) {
        u[i][k] = _mm512_dpbusd_epi32(u[i][k], q_lo, _mm512_set1_epi32(static_cast<int>(x[i][b].digits[k][c])));
        u[i][k] = _mm512_dpbusd_epi32(u[i][k], q_hi, _mm512_set1_epi32(static_cast<int>(x[i][b].digits[k][4 + c])));
      }
  }
  for (int i = 0; i < NM; ++i) {
    const Q4VnniBlock& xb = x[i][b];
    // Σ_k 256^k u_k: |u_k| <= 32·8·128 = 2^15, so each pair below 2^24 is exact in fp32; one rounding joins them.
    const __m512i low = _mm512_add_epi32(u[i][0], _mm512_slli_epi32(u[i][1], 8));
    const __m512i high = _mm512_add_epi32(u[i][2], _mm512_slli_epi32(u[i][3], 8));
    __m512 sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(high), _mm512_set1_ps(65536.f), _mm512_cvtepi32_ps(low));
    for (int t = 0; t < xb.rest.count; ++t) {
      const int j = xb.rest.col[t];
      const __m512i v = _mm512_loadu_si512(quants + 64 * q4_0_panel_chunk(j));
      const __m512i q = _mm512_and_si512(_mm512_srli_epi32(v, q4_0_panel_bit(j)), _mm512_set1_epi32(15));
      const __m512 w = _mm512_sub_ps(_mm512_cvtepi32_ps(q), _mm512_set1_ps(8.f));
      sum = _mm512_fmadd_ps(w, _mm512_set1_ps(xb.rest.value[t]), sum);
    }
    // d·sum first, then the exact power of two: no intermediate underflow for a block of tiny x.
    acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(d, sum), _mm512_set1_ps(xb.rest.inv_scale), acc[i]);
  }
}

template <int NM>
CB_VNNI void panel_dot(const uint8_t* panel, const Q4VnniBlock* const* x, int64_t cols, float* out) {
  constexpr int64_t kBlock = kPanelRows * block_bytes(WeightFormat::q4_0);
  __m512 acc[NM];
  for (int i = 0; i < NM; ++i) acc[i] = _mm512_setzero_ps();
  const int64_t ahead = panel_prefetch_bytes();
  for (int64_t b = 0; b < cols / kQuantBlock; ++b) {
    const uint8_t* pb = panel + b * kBlock;
    for (int64_t l = 0; l < kBlock; l += 64) _mm_prefetch(reinterpret_cast<const char*>(pb + ahead + l), _MM_HINT_T0);
    panel_block<NM>(pb, x, b, acc);
  }
  for (int i = 0; i < NM; ++i) _mm512_storeu_ps(out + kPanelRows * i, acc[i]);
}

#pragma GCC diagnostic pop
#undef CB_VNNI

}  // namespace

void q4_0_vnni_prepare(const float* x, int64_t cols, Q4VnniBlock* out) {
  for (int64_t b = 0; b < cols / kQuantBlock; ++b) prepare_block(x + b * kQuantBlock, out[b]);
}

void q4_0_vnni_panel_dot(int n, const uint8_t* panel, const Q4VnniBlock* const* x, int64_t cols, float* out) {
  switch (n) {
    case 1: return panel_dot<1>(panel, x, cols, out);
    case 2: return panel_dot<2>(panel, x, cols, out);
    case 3: return panel_dot<3>(panel, x, cols, out);
    case 4: return panel_dot<4>(panel, x, cols, out);
  }
  fail("q4_0_vnni_panel_dot: {} rows of x (1 to 4)", n);
}

#else

void q4_0_vnni_prepare(const float*, int64_t, Q4VnniBlock*) { fail("q4_0_vnni_prepare: x86-64 only"); }
void q4_0_vnni_panel_dot(int, const uint8_t*, const Q4VnniBlock* const*, int64_t, float*) {
  fail("q4_0_vnni_panel_dot: x86-64 only");
}

#endif

}  // namespace cb::kernels
