#include "framework/kernels/gemm.h"

#include <algorithm>
#include <cstring>

#include "framework/error.h"
#include "framework/kernels/avx512_dense.h"
#include "framework/kernels/avx512_transpose.h"

namespace cb::kernels {

#if defined(__x86_64__)
namespace {

#define CB_AVX512 [[gnu::target("avx512f")]]
// GCC 12's AVX-512 headers pass an undefined vector as the merge source of unmasked intrinsics and then
// warn that it is uninitialised (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

constexpr int kMR = 6;  // rows of x per micro-kernel call (6 x 4 accumulators + 4 of B: 28 of 32 registers)
constexpr int64_t kKC = kGemmDepth;
constexpr int kNR = kGemmPanelRows;

// Elements [k, k + kn) of a stored row as fp32, zero past kn (kn <= 16).
template <WeightFormat R>
CB_AVX512 inline __m512 load16(const uint8_t* row, int64_t k, int64_t kn) {
  if (kn == 16) return dense16<R>(row, k);
  alignas(64) uint8_t tail[64] = {};  // 16 fp32 elements; a masked 16-bit load would need AVX-512BW
  std::memcpy(tail, row + row_bytes(R, k), static_cast<size_t>(row_bytes(R, kn)));
  return dense16<R>(tail, 0);
}

// bp[(k - k0) * 64 + j] = b[j, k] for k0 <= k < k0 + kc, j < n; 0 for n <= j < 64 (b's rows K long).
template <WeightFormat R>
CB_AVX512 void pack(const void* b, int64_t n, int64_t K, int64_t k0, int64_t kc, float* bp) {
  const int64_t stride = row_bytes(R, K);
  for (int g = 0; g < kNR / 16; ++g) {
    for (int64_t k = k0; k < k0 + kc; k += 16) {
      const int64_t kn = std::min<int64_t>(16, k0 + kc - k);
      __m512 v[16];
      for (int j = 0; j < 16; ++j) {
        const int64_t row = 16 * g + j;
        v[j] = row < n ? load16<R>(static_cast<const uint8_t*>(b) + row * stride, k, kn) : _mm512_setzero_ps();
      }
      transpose16x16(v);
      for (int64_t i = 0; i < kn; ++i) _mm512_storeu_ps(bp + (k - k0 + i) * kNR + 16 * g, v[i]);
    }
  }
}

// y[i, 0:n] (+)= Σ_{k < kc} x[i, k] · bp[k, 0:n] for i < MR; `accumulate` adds to y (blocks after the first).
template <int MR>
CB_AVX512 void micro(const float* x, int64_t ldx, const float* bp, int64_t kc, float* y, int64_t ldy, int64_t n,
                     bool accumulate) {
  __m512 acc[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const float* bk = bp + k * kNR;
    const __m512 b0 = _mm512_loadu_ps(bk), b1 = _mm512_loadu_ps(bk + 16), b2 = _mm512_loadu_ps(bk + 32),
                 b3 = _mm512_loadu_ps(bk + 48);
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(x[i * ldx + k]);  // folded into the FMAs as a broadcast operand
      acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(a, b2, acc[i][2]);
      acc[i][3] = _mm512_fmadd_ps(a, b3, acc[i][3]);
    }
  }
  for (int j = 0; j < 4; ++j) {
    const int64_t left = std::clamp<int64_t>(n - 16 * j, 0, 16);
    if (left == 0) break;
    const __mmask16 mask = static_cast<__mmask16>((1u << left) - 1);
    for (int i = 0; i < MR; ++i) {
      float* out = y + i * ldy + 16 * j;
      const __m512 v = accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), acc[i][j]) : acc[i][j];
      _mm512_mask_storeu_ps(out, mask, v);
    }
  }
}

using Micro = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, bool);
constexpr Micro kMicro[kMR] = {micro<1>, micro<2>, micro<3>, micro<4>, micro<5>, micro<6>};

#pragma GCC diagnostic pop
#undef CB_AVX512

}  // namespace

void gemm_packed_avx512(const float* x, int64_t ldx, int64_t M, const float* bp, int64_t K, int64_t n, float* y,
                        int64_t ldy, bool accumulate) {
  for (int64_t k0 = 0; k0 < K; k0 += kKC) {
    const int64_t kc = std::min(kKC, K - k0);
    for (int64_t m0 = 0; m0 < M; m0 += kMR) {
      const int mr = static_cast<int>(std::min<int64_t>(kMR, M - m0));
      kMicro[mr - 1](x + m0 * ldx + k0, ldx, bp + k0 * kNR, kc, y + m0 * ldy, ldy, n, accumulate || k0 > 0);
    }
  }
}

void gemm_panel_avx512(const float* x, int64_t M, int64_t K, const void* b, WeightFormat rows, int64_t n, float* y,
                       int64_t ldy, float* bp) {
  // A depth block packed, then multiplied, as gemm_packed_avx512 walks K: its 64 KB stay in L2 between.
  for (int64_t k0 = 0; k0 < K; k0 += kKC) {
    const int64_t kc = std::min(kKC, K - k0);
    switch (rows) {
      case WeightFormat::f32: pack<WeightFormat::f32>(b, n, K, k0, kc, bp); break;
      case WeightFormat::bf16: pack<WeightFormat::bf16>(b, n, K, k0, kc, bp); break;
      case WeightFormat::f16: pack<WeightFormat::f16>(b, n, K, k0, kc, bp); break;
      default: fail("gemm_panel_avx512: {} rows; dequantise a block format first", weight_format_name(rows));
    }
    gemm_packed_avx512(x + k0, K, M, bp, kc, n, y, ldy, k0 > 0);
  }
}
#endif

}  // namespace cb::kernels
