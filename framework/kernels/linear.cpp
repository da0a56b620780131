// The CPU kernels behind linear.h. Three families with one structure, scalar (portable), AVX2+FMA+F16C and
// AVX-512F (the SIMD ones compiled with function-level target attributes, since the build targets generic
// x86-64; avx512_vnni is AVX-512F with q4_0 panels through q4_0_vnni.h; avx2 lays q4_0 out in panels
// too, read through q4_0_avx2.h):
//   row dot   y[m] = Σ_c W[r, c] x[m, c] for up to 4 rows of x against one stored row of W, decoding W in
//             registers. Block formats sum q·x over a block of 32 and scale by the block's d once
//             (d·Σ q x rather than Σ (d q) x: one multiply per block, not per element; equal up to fp32
//             rounding, as d·q is exact in fp32).
//   dequant   a stored row to fp32, bit for bit what unpack_weight gives (d·q is exact in fp32).
#include "framework/kernels/linear.h"

#include <c10/util/Half.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "framework/error.h"
#include "framework/kernels/avx512_dense.h"
#include "framework/kernels/avx512_transpose.h"
#include "framework/kernels/cpu_features.h"
#include "framework/kernels/gemm.h"
#include "framework/kernels/q4_0_avx2.h"
#include "framework/kernels/q4_0_vnni.h"
#include "framework/kernels/row_threads.h"

namespace cb::kernels {
namespace {

using F = WeightFormat;

// Up to this many rows of x share one pass over a weight row (accumulators held in registers).
constexpr int kRowGroup = 4;
// Weight rows dequantised per BLAS call on the tiled path (the tile is ~4 MB of fp32).
constexpr int64_t kTileFloats = int64_t{1} << 20;

// One stored row · up to kRowGroup rows of x: out[i] = Σ_c W[c] x[i][c].
using RowDot = void (*)(const uint8_t* w, const float* const* x, int64_t cols, float* out);
// One stored row -> cols floats.
using RowDequant = void (*)(const uint8_t* w, int64_t cols, float* out);
// One panel of 16 stored rows (weight_format.h) · up to kRowGroup rows of x: out[i * 16 + r] = Σ_c W[r, c] x[i][c].
using PanelDot = void (*)(const uint8_t* panel, const float* const* x, int64_t cols, float* out);
// One panel of 16 stored rows -> 16 x cols floats, row r at out + r * ld.
using PanelDequant = void (*)(const uint8_t* panel, int64_t cols, float* out, int64_t ld);

inline float half_bits_to_float(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return c10::detail::fp16_ieee_to_fp32_value(h);
}

// Element c of a dense stored row.
template <F Fmt>
inline float dense_at(const uint8_t* w, int64_t c) {
  if constexpr (Fmt == F::f32) {
    float v;
    std::memcpy(&v, w + 4 * c, 4);
    return v;
  } else if constexpr (Fmt == F::bf16) {
    uint16_t b;
    std::memcpy(&b, w + 2 * c, 2);
    const uint32_t u = uint32_t{b} << 16;
    float v;
    std::memcpy(&v, &u, 4);
    return v;
  } else {
    return half_bits_to_float(w + 2 * c);
  }
}

// The 32 quantized values of a block (without the scale d).
template <F Fmt>
inline void block_values(const uint8_t* blk, float q[32]) {
  if constexpr (Fmt == F::q8_0) {
    for (int j = 0; j < 32; ++j) q[j] = static_cast<float>(static_cast<int8_t>(blk[2 + j]));
  } else {
    for (int j = 0; j < 16; ++j) {
      q[j] = static_cast<float>((blk[2 + j] & 0x0F) - 8);
      q[j + 16] = static_cast<float>((blk[2 + j] >> 4) - 8);
    }
  }
}

// ---- scalar family ----

template <F Fmt, int NM>
void dot_scalar(const uint8_t* w, const float* const* x, int64_t cols, float* out) {
  float acc[NM] = {};
  if constexpr (Fmt == F::q8_0 || Fmt == F::q4_0) {
    for (int64_t b = 0; b < cols / kQuantBlock; ++b, w += block_bytes(Fmt)) {
      float q[32];
      block_values<Fmt>(w, q);
      const float d = half_bits_to_float(w);
      for (int i = 0; i < NM; ++i) {
        const float* xi = x[i] + b * kQuantBlock;
        float s = 0.f;
        for (int j = 0; j < 32; ++j) s += q[j] * xi[j];
        acc[i] += d * s;
      }
    }
  } else {
    for (int64_t c = 0; c < cols; ++c) {
      const float wc = dense_at<Fmt>(w, c);
      for (int i = 0; i < NM; ++i) acc[i] += wc * x[i][c];
    }
  }
  for (int i = 0; i < NM; ++i) out[i] = acc[i];
}

template <F Fmt>
void dequant_scalar(const uint8_t* w, int64_t cols, float* out) {
  if constexpr (Fmt == F::q8_0 || Fmt == F::q4_0) {
    for (int64_t b = 0; b < cols / kQuantBlock; ++b, w += block_bytes(Fmt), out += kQuantBlock) {
      float q[32];
      block_values<Fmt>(w, q);
      const float d = half_bits_to_float(w);
      for (int j = 0; j < 32; ++j) out[j] = d * q[j];
    }
  } else {
    for (int64_t c = 0; c < cols; ++c) out[c] = dense_at<Fmt>(w, c);
  }
}

// ---- AVX2+FMA+F16C family ----
#if defined(__x86_64__)
// Weight bytes ahead of the current read that a row kernel asks the cache for: the hardware prefetcher
// alone leaves ~10 % of the read bandwidth unused on a single stream (measured on Zen: fp32 GEMV 44 ->
// 48 GB/s). Prefetching past the end of the weight is harmless (prefetches never fault).
constexpr int64_t kPrefetchBytes = 1024;

inline void prefetch_line(const uint8_t* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }

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

// ---- AVX-512F family (+ FMA, F16C): 16 lanes, twice AVX2's work per instruction ----
// Decode of the block formats is bound by the instructions that widen and convert the weights, not by
// memory, so the wider registers pay there; the dense formats are memory-bound either way.
#define CB_AVX512 [[gnu::target("avx512f,avx2,fma,f16c")]]
// GCC 12's AVX-512 headers pass an undefined vector as the merge source of unmasked intrinsics and then
// warn that it is uninitialised (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// q4_0 values of 16 lanes: each lane's low nibble n as the float n - 8. A 16-entry table lookup does it in
// one permute (it reads the low 4 bits of each lane only), where masking, subtracting and converting would
// take three instructions.
CB_AVX512 inline __m512 q4_values16(__m512i lanes) {
  return _mm512_permutexvar_ps(lanes, _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7));
}

// A block's 32 quantized values as 2 x 16 floats (elements 0-15, 16-31).
template <F Fmt>
CB_AVX512 inline void block16x2(const uint8_t* blk, __m512 q[2]) {
  if constexpr (Fmt == F::q8_0) {
    for (int k = 0; k < 2; ++k)
      q[k] =
          _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2 + 16 * k))));
  } else {
    // Byte j of qs holds element j (low nibble) and j+16 (high nibble).
    const __m512i qs = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)));
    q[0] = q4_values16(qs);
    q[1] = q4_values16(_mm512_srli_epi32(qs, 4));
  }
}

CB_AVX512 inline __m512 block_scale16(const uint8_t* blk) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  return _mm512_set1_ps(_cvtsh_ss(h));
}

// acc[i] += d · Σ_j q_j x[i][off + j] over one block.
template <F Fmt, int NM>
CB_AVX512 inline void block_dot16(const uint8_t* blk, const float* const* x, int64_t off, __m512* acc) {
  __m512 q[2];
  block16x2<Fmt>(blk, q);
  const __m512 d = block_scale16(blk);
  for (int i = 0; i < NM; ++i) {
    const float* xi = x[i] + off;
    const __m512 s = _mm512_fmadd_ps(q[1], _mm512_loadu_ps(xi + 16), _mm512_mul_ps(q[0], _mm512_loadu_ps(xi)));
    acc[i] = _mm512_fmadd_ps(d, s, acc[i]);
  }
}

template <F Fmt, int NM>
CB_AVX512 void dot_avx512(const uint8_t* w, const float* const* x, int64_t cols, float* out) {
  // Two accumulator sets (even/odd blocks, or the two halves of 32 columns) hide the FMA latency.
  __m512 a0[NM], a1[NM];
  for (int i = 0; i < NM; ++i) a0[i] = a1[i] = _mm512_setzero_ps();
  if constexpr (Fmt == F::q8_0 || Fmt == F::q4_0) {
    const int64_t blocks = cols / kQuantBlock;
    int64_t b = 0;
    for (; b + 2 <= blocks; b += 2) {
      const uint8_t* blk = w + b * block_bytes(Fmt);
      prefetch_line(blk + kPrefetchBytes);
      if constexpr (2 * block_bytes(Fmt) > 64) prefetch_line(blk + kPrefetchBytes + 64);
      block_dot16<Fmt, NM>(blk, x, b * kQuantBlock, a0);
      block_dot16<Fmt, NM>(blk + block_bytes(Fmt), x, (b + 1) * kQuantBlock, a1);
    }
    if (b < blocks) block_dot16<Fmt, NM>(w + b * block_bytes(Fmt), x, b * kQuantBlock, a0);
    for (int i = 0; i < NM; ++i) out[i] = _mm512_reduce_add_ps(_mm512_add_ps(a0[i], a1[i]));
  } else {
    int64_t c = 0;
    for (; c + 32 <= cols; c += 32) {
      // No software prefetch: the hardware prefetcher keeps up with one row stream per thread, and asking
      // for each line as well cost bandwidth (medium, 2026-12-06, Zen 5, alternating: fp32 decode 63.5-65.6
      // -> 67.8-69.4 tok/s, kernels alone 41-48 -> 51-63 GB/s; the 16-bit rows had gone 69 -> 81 tok/s).
      const __m512 w0 = dense16<Fmt>(w, c), w1 = dense16<Fmt>(w, c + 16);
      for (int i = 0; i < NM; ++i) {
        a0[i] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[i] + c), a0[i]);
        a1[i] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x[i] + c + 16), a1[i]);
      }
    }
    if (c + 16 <= cols) {
      const __m512 w0 = dense16<Fmt>(w, c);
      for (int i = 0; i < NM; ++i) a0[i] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[i] + c), a0[i]);
      c += 16;
    }
    for (int i = 0; i < NM; ++i) out[i] = _mm512_reduce_add_ps(_mm512_add_ps(a0[i], a1[i]));
    for (; c < cols; ++c) {  // an explicit FMA: the same rounding whatever the compiler contracts
      const float wc = dense_at<Fmt>(w, c);
      for (int i = 0; i < NM; ++i) out[i] = std::fma(wc, x[i][c], out[i]);
    }
  }
}

template <F Fmt>
CB_AVX512 void dequant_avx512(const uint8_t* w, int64_t cols, float* out) {
  if constexpr (Fmt == F::q8_0 || Fmt == F::q4_0) {
    for (int64_t b = 0; b < cols / kQuantBlock; ++b, w += block_bytes(Fmt), out += kQuantBlock) {
      __m512 q[2];
      block16x2<Fmt>(w, q);
      const __m512 d = block_scale16(w);
      for (int k = 0; k < 2; ++k) _mm512_storeu_ps(out + 16 * k, _mm512_mul_ps(d, q[k]));
    }
  } else {
    int64_t c = 0;
    for (; c + 16 <= cols; c += 16) _mm512_storeu_ps(out + c, dense16<Fmt>(w, c));
    for (; c < cols; ++c) out[c] = dense_at<Fmt>(w, c);
  }
}
// Row panels (weight_format.h): one load gives the same quant bytes of the 16 rows, one lane per row. q8_0:
// byte c of each row, widened, is column c. q4_0: bytes 4k..4k+3 of each row, whose nibble at bit 8i (and
// 8i + 4) is column 4k + i (and 4k + i + 16), shifted down and looked up as in rows. Each column multiplies
// that column's x broadcast from memory inside the FMA, and the 16 rows' scales are one vector, applied
// once per block. Per 16 weights that is a widening load or a shift, a conversion or a lookup, and one
// FMA: no per-row scale broadcast, no x vector load (the row kernels' costs). (q4_0 panels have a faster
// kernel where the CPU has AVX-512 VNNI: q4_0_vnni.h.)

// Independent FMA chains per row of x in a panel block: enough to cover the FMA latency (4 cycles, one
// vector a cycle) with the other rows' chains; one row of x alone needs four.
template <int NM>
constexpr int kPanelChains = NM == 1 ? 4 : 2;

// s[n % chains][i] += q · x[i][off + j]: column j of a panel block (q: its 16 rows' weights), the n-th
// column the block visits.
template <int NM>
CB_AVX512 inline void panel_column(__m512 q, const float* const* x, int64_t off, int j, int n, __m512 (*s)[NM]) {
  __m512* chain = s[n % kPanelChains<NM>];
  for (int i = 0; i < NM; ++i) chain[i] = _mm512_fmadd_ps(q, _mm512_set1_ps(x[i][off + j]), chain[i]);
}

// The 16 rows' scales of a panel block.
CB_AVX512 inline __m512 panel_scales16(const uint8_t* pb) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb)));
}

// q4_0 chunk k of a panel block: bytes 4k..4k+3 of each row, one 32-bit lane per row (weight_format.h).
CB_AVX512 inline __m512i q4_panel_chunk(const uint8_t* quants, int k) { return _mm512_loadu_si512(quants + 64 * k); }

// Column j of a q4_0 panel block from its chunk q4_0_panel_chunk(j).
CB_AVX512 inline __m512 q4_panel_column16(__m512i chunk, int j) {
  const int shift = q4_0_panel_bit(j);
  return q4_values16(shift ? _mm512_srli_epi32(chunk, shift) : chunk);
}

// Column j of a panel block as 16 floats, one per row (q, without the scale).
template <F Fmt>
CB_AVX512 inline __m512 panel_column16(const uint8_t* quants, int j) {
  if constexpr (Fmt == F::q8_0) {
    return _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(quants + kPanelRows * j))));
  } else {
    return q4_panel_column16(q4_panel_chunk(quants, q4_0_panel_chunk(j)), j);
  }
}

// acc[i] += d ⊙ Σ_j q[:, j] x[i][off + j] over one block of a panel, d and q[:, j] 16 lanes (the rows).
template <F Fmt, int NM>
CB_AVX512 inline void panel_block_dot16(const uint8_t* pb, const float* const* x, int64_t off, __m512* acc) {
  const __m512 d = panel_scales16(pb);
  const uint8_t* quants = pb + 2 * kPanelRows;
  __m512 s[kPanelChains<NM>][NM];
  for (auto& chain : s)
    for (int i = 0; i < NM; ++i) chain[i] = _mm512_setzero_ps();
  if constexpr (Fmt == F::q8_0) {
#pragma GCC unroll 32
    for (int c = 0; c < 32; ++c) panel_column<NM>(panel_column16<Fmt>(quants, c), x, off, c, c, s);
  } else {
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {  // one load for columns 4k..4k+3 and 4k+16..4k+19
      const __m512i v = q4_panel_chunk(quants, k);
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const int c = 4 * k + i;
        panel_column<NM>(q4_panel_column16(v, c), x, off, c, 2 * c, s);
        panel_column<NM>(q4_panel_column16(v, c + 16), x, off, c + 16, 2 * c + 1, s);
      }
    }
  }
  for (int i = 0; i < NM; ++i) {
    __m512 sum = s[0][i];
    for (int c = 1; c < kPanelChains<NM>; ++c) sum = _mm512_add_ps(sum, s[c][i]);
    acc[i] = _mm512_fmadd_ps(d, sum, acc[i]);
  }
}

template <F Fmt, int NM>
CB_AVX512 void panel_dot_avx512(const uint8_t* panel, const float* const* x, int64_t cols, float* out) {
  __m512 acc[NM];
  for (int i = 0; i < NM; ++i) acc[i] = _mm512_setzero_ps();
  const int64_t ahead = panel_prefetch_bytes();
  for (int64_t b = 0; b < cols / kQuantBlock; ++b) {
    const uint8_t* pb = panel + b * kPanelRows * block_bytes(Fmt);
    for (int64_t l = 0; l < kPanelRows * block_bytes(Fmt); l += 64) prefetch_line(pb + ahead + l);
    panel_block_dot16<Fmt, NM>(pb, x, b * kQuantBlock, acc);
  }
  for (int i = 0; i < NM; ++i) _mm512_storeu_ps(out + kPanelRows * i, acc[i]);
}

// Half h of each block: columns 16h..16h+15 of the 16 rows, decoded and scaled as columns (d·q exact, as
// dequant_avx512), then transposed into rows.
template <F Fmt>
CB_AVX512 void panel_dequant_avx512(const uint8_t* panel, int64_t cols, float* out, int64_t ld) {
  for (int64_t b = 0; b < cols / kQuantBlock; ++b) {
    const uint8_t* pb = panel + b * kPanelRows * block_bytes(Fmt);
    const __m512 d = panel_scales16(pb);
    for (int h = 0; h < 2; ++h) {
      __m512 v[16];
      for (int j = 0; j < 16; ++j) v[j] = _mm512_mul_ps(d, panel_column16<Fmt>(pb + 2 * kPanelRows, 16 * h + j));
      transpose16x16(v);
      for (int r = 0; r < kPanelRows; ++r) _mm512_storeu_ps(out + r * ld + b * kQuantBlock + 16 * h, v[r]);
    }
  }
}

// The panel's columns as they come, column c of its 16 rows at out + c * ld (16 floats): the GEMM's packed
// layout (gemm.h), with no transpose there and back.
template <F Fmt>
CB_AVX512 void panel_dequant_columns_avx512(const uint8_t* panel, int64_t cols, float* out, int64_t ld) {
  for (int64_t b = 0; b < cols / kQuantBlock; ++b) {
    const uint8_t* pb = panel + b * kPanelRows * block_bytes(Fmt);
    const __m512 d = panel_scales16(pb);
    for (int j = 0; j < kQuantBlock; ++j)
      _mm512_storeu_ps(out + (b * kQuantBlock + j) * ld, _mm512_mul_ps(d, panel_column16<Fmt>(pb + 2 * kPanelRows, j)));
  }
}
#pragma GCC diagnostic pop
#undef CB_AVX512
#endif

// ---- dispatch ----

enum class PanelX { floats, vnni, avx2 };

struct FormatKernels {
  std::array<RowDot, kRowGroup> dot;  // dot[n - 1] takes n rows of x
  RowDequant dequant;
  // Block formats: panel_dot[n - 1] takes n rows of x, panel_dequant a panel; empty: panels are taken apart
  // into rows first (families without panel kernels; panels are only laid out where the AVX-512 family
  // runs, or q4_0 where avx2 does: preferred_layout).
  std::array<PanelDot, kRowGroup> panel_dot{};
  PanelDequant panel_dequant = nullptr;
  // A panel's column c at out + c * ld (the AVX-512 GEMM's packed layout), where the family has one.
  PanelDequant panel_dequant_columns = nullptr;
  // What x the panels take: floats through panel_dot, or x prepared once per call for q4_0 on avx512_vnni
  // (q4_0_vnni.h) and on avx2 (q4_0_avx2.h, the family's only panel kernel).
  PanelX panel_x = PanelX::floats;
};

template <F Fmt>
FormatKernels kernels_for(LinearKernel k) {
#if defined(__x86_64__)
  if (uses_avx512(k)) {
    FormatKernels out{{dot_avx512<Fmt, 1>, dot_avx512<Fmt, 2>, dot_avx512<Fmt, 3>, dot_avx512<Fmt, 4>},
                      dequant_avx512<Fmt>};
    if constexpr (Fmt == F::q8_0 || Fmt == F::q4_0) {
      out.panel_dot = {panel_dot_avx512<Fmt, 1>, panel_dot_avx512<Fmt, 2>, panel_dot_avx512<Fmt, 3>,
                       panel_dot_avx512<Fmt, 4>};
      out.panel_dequant = panel_dequant_avx512<Fmt>;
      out.panel_dequant_columns = panel_dequant_columns_avx512<Fmt>;
    }
    if (Fmt == F::q4_0 && k == LinearKernel::avx512_vnni) out.panel_x = PanelX::vnni;
    return out;
  }
  if (k == LinearKernel::avx2) {
    FormatKernels out{{dot_avx2<Fmt, 1>, dot_avx2<Fmt, 2>, dot_avx2<Fmt, 3>, dot_avx2<Fmt, 4>}, dequant_avx2<Fmt>};
    if constexpr (Fmt == F::q4_0) {
      out.panel_x = PanelX::avx2;
      out.panel_dequant = q4_0_avx2_panel_dequant;
    }
    return out;
  }
#endif
  return {{dot_scalar<Fmt, 1>, dot_scalar<Fmt, 2>, dot_scalar<Fmt, 3>, dot_scalar<Fmt, 4>}, dequant_scalar<Fmt>};
}

FormatKernels kernels_for(F f, LinearKernel k) {
  switch (f) {
    case F::f32: return kernels_for<F::f32>(k);
    case F::bf16: return kernels_for<F::bf16>(k);
    case F::f16: return kernels_for<F::f16>(k);
    case F::q8_0: return kernels_for<F::q8_0>(k);
    case F::q4_0: return kernels_for<F::q4_0>(k);
  }
  fail("linear: unknown weight format");
}

const uint8_t* storage(const PackedWeight& w) { return static_cast<const uint8_t*>(w.data.data_ptr()); }

// Output rows per chunk: ~64 KB of weights (a few microseconds), small enough to balance the threads, large
// enough that claiming a chunk costs nothing beside it; smaller layers stay on one thread.
int64_t row_grain(const PackedWeight& w) {
  return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, row_bytes(w.format, w.cols)));
}

// The units the threads share out: W's panels of 16 rows (weight_format.h), then its rows after the last
// full panel one by one (all rows, in the rows layout).
struct RowUnits {
  int64_t panels = 0, count = 0;
  int64_t first_row(int64_t u) const { return u < panels ? u * kPanelRows : u - panels + panels * kPanelRows; }
  int64_t rows(int64_t u) const { return u < panels ? kPanelRows : 1; }
};

// The units of W's rows [r0, r0 + n), r0 a multiple of kPanelRows when W is in panels.
RowUnits row_units(const PackedWeight& w, int64_t r0, int64_t n) {
  const int64_t panel_rows = w.layout == BlockLayout::panels ? w.rows / kPanelRows * kPanelRows : 0;
  const int64_t panels = std::clamp<int64_t>(panel_rows - r0, 0, n) / kPanelRows;
  return {panels, panels + n - panels * kPanelRows};
}

// Units per chunk for row_grain's rows per chunk.
int64_t unit_grain(const PackedWeight& w, const RowUnits& u) {
  return u.panels ? std::max<int64_t>(1, row_grain(w) / kPanelRows) : row_grain(w);
}

// A panel taken apart into its 16 rows, in the calling thread's buffer (grown as needed and kept).
const uint8_t* panel_as_rows(F f, const uint8_t* panel, int64_t cols) {
  thread_local std::vector<uint8_t> buffer;
  buffer.resize(static_cast<size_t>(kPanelRows * row_bytes(f, cols)));
  panel_to_rows(f, panel, cols, buffer.data());
  return buffer.data();
}

// One weight of a row-kernel call: y [M, w.rows] = x · Wᵀ, its units numbered from `first_unit` in the call.
struct RowJob {
  RowJob() = default;
  RowJob(const PackedWeight& weight, const FormatKernels& kernels, float* out)
      : w(&weight), k(kernels), units(row_units(weight, 0, weight.rows)), y(out) {}
  const PackedWeight* w = nullptr;
  FormatKernels k;
  RowUnits units;
  float* y = nullptr;
  int64_t first_unit = 0;  // set by row_kernel_linear
};

// x's rows prepared for the q4_0 kernels that take them (cols / 32 blocks a row), or null.
struct PreparedX {
  const Q4VnniBlock* vnni = nullptr;  // for the VNNI q4_0 panels
  const Q4Avx2Block* avx2 = nullptr;  // for the AVX2 q4_0 panels
};

// x [M, cols] prepared by `prepare` a row at a time into the calling thread's buffer for Block (grown as
// needed and kept).
template <class Block>
const Block* prepare_x(const float* x, int64_t M, int64_t cols, void (*prepare)(const float*, int64_t, Block*)) {
  thread_local std::vector<Block> buffer;
  const int64_t blocks = cols / kQuantBlock;
  if (static_cast<int64_t>(buffer.size()) < M * blocks) buffer.resize(static_cast<size_t>(M * blocks));
  for (int64_t m = 0; m < M; ++m) prepare(x + m * cols, cols, buffer.data() + m * blocks);
  return buffer.data();
}

// y [M, rows] of one panel u of a job: its weights are read once for all M rows of x (they stay in L1/L2
// across the groups of kRowGroup).
void panel_unit(const float* x, const PreparedX& xp, int64_t M, const RowJob& job, int64_t u) {
  const PackedWeight& w = *job.w;
  const int64_t stride = row_bytes(w.format, w.cols), cols = w.cols, rows = w.rows;
  const float* xs[kRowGroup];
  const Q4VnniBlock* xqs[kRowGroup];
  const Q4Avx2Block* x2s[kRowGroup];
  float out[kRowGroup * kPanelRows], row_out[kRowGroup];  // out[i * 16 + r]: x row i, weight row r of the panel
  const int64_t r0 = job.units.first_row(u);
  const bool panel_kernel = job.k.panel_dot[0] || job.k.panel_x != PanelX::floats;
  const PanelX panel_x = panel_kernel ? job.k.panel_x : PanelX::floats;
  const int64_t blocks = cols / kQuantBlock;
  const uint8_t* wr = storage(w) + r0 * stride;
  if (!panel_kernel) wr = panel_as_rows(w.format, wr, cols);
  for (int64_t m = 0; m < M; m += kRowGroup) {
    const int n = static_cast<int>(std::min<int64_t>(kRowGroup, M - m));
    for (int i = 0; i < n; ++i) xs[i] = x + (m + i) * cols;
    if (panel_x == PanelX::vnni) {
      for (int i = 0; i < n; ++i) xqs[i] = xp.vnni + (m + i) * blocks;
      q4_0_vnni_panel_dot(n, wr, xqs, cols, out);
    } else if (panel_x == PanelX::avx2) {
      for (int i = 0; i < n; ++i) x2s[i] = xp.avx2 + (m + i) * blocks;
      q4_0_avx2_panel_dot(n, wr, x2s, cols, out);
    } else if (panel_kernel) {
      job.k.panel_dot[n - 1](wr, xs, cols, out);
    } else {
      for (int64_t r = 0; r < kPanelRows; ++r) {
        job.k.dot[n - 1](wr + r * stride, xs, cols, row_out);
        for (int i = 0; i < n; ++i) out[i * kPanelRows + r] = row_out[i];
      }
    }
    for (int i = 0; i < n; ++i)
      for (int64_t r = 0; r < kPanelRows; ++r) job.y[(m + i) * rows + r0 + r] = out[i * kPanelRows + r];
  }
}

// y [M, rows] of W's stored rows [r0, r1) (the rows after its panels): each row is read once for all M rows
// of x. One call for the whole run, not one per row: at M = 1 a call per row cost ~3 % of an fp32 decode.
void row_run(const float* x, int64_t M, const RowJob& job, int64_t r0, int64_t r1) {
  const PackedWeight& w = *job.w;
  const int64_t stride = row_bytes(w.format, w.cols), cols = w.cols, rows = w.rows;
  const uint8_t* wr = storage(w);
  const float* xs[kRowGroup];
  float row_out[kRowGroup];
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t m = 0; m < M; m += kRowGroup) {
      const int n = static_cast<int>(std::min<int64_t>(kRowGroup, M - m));
      for (int i = 0; i < n; ++i) xs[i] = x + (m + i) * cols;
      job.k.dot[n - 1](wr + r * stride, xs, cols, row_out);
      for (int i = 0; i < n; ++i) job.y[(m + i) * rows + r] = row_out[i];
    }
}

// y of a job's units [u0, u1).
void job_units(const float* x, const PreparedX& xp, int64_t M, const RowJob& job, int64_t u0, int64_t u1) {
  for (int64_t u = u0; u < std::min(u1, job.units.panels); ++u) panel_unit(x, xp, M, job, u);
  if (u1 > job.units.panels) {
    const int64_t ur = std::max(u0, job.units.panels);
    row_run(x, M, job, job.units.first_row(ur), job.units.first_row(u1 - 1) + 1);
  }
}

// Every job's y = x [M, cols] · Wᵀ, M <= kSmallBatchRows, in one hand-off to the threads: they share out
// the jobs' units in order (a decode step's q/k/v or gate/up then cost one fork-join, not one each).
void row_kernel_linear(const float* x, int64_t M, RowJob* jobs, int n_jobs) {
  int64_t total = 0, grain = std::numeric_limits<int64_t>::max();
  bool vnni = false, avx2 = false;
  for (int j = 0; j < n_jobs; ++j) {
    jobs[j].first_unit = total;
    total += jobs[j].units.count;
    grain = std::min(grain, unit_grain(*jobs[j].w, jobs[j].units));
    const bool has_panels = jobs[j].units.panels > 0;
    vnni = vnni || (has_panels && jobs[j].k.panel_x == PanelX::vnni);
    avx2 = avx2 || (has_panels && jobs[j].k.panel_x == PanelX::avx2);
  }
  // x's rows for the q4_0 kernels that take them, once for all jobs (they share x).
  const int64_t cols = jobs[0].w->cols;
  PreparedX xp;
  if (vnni) xp.vnni = prepare_x(x, M, cols, q4_0_vnni_prepare);
  if (avx2) xp.avx2 = prepare_x(x, M, cols, q4_0_avx2_prepare);
  parallel_rows(total, grain, [&](int64_t u0, int64_t u1) {
    int j = 0;
    for (int64_t u = u0; u < u1;) {
      while (u >= jobs[j].first_unit + jobs[j].units.count) ++j;
      const int64_t end = std::min(u1, jobs[j].first_unit + jobs[j].units.count);
      job_units(x, xp, M, jobs[j], u - jobs[j].first_unit, end - jobs[j].first_unit);
      u = end;
    }
  });
}

// Columns [c0, c0 + n) of unit u of `units` (W's rows from r0) dequantised into t (row stride ld), at the
// unit's row within the range; c0 a multiple of kQuantBlock for the block formats.
void dequantise_unit(const PackedWeight& w, const FormatKernels& k, const RowUnits& units, int64_t r0, int64_t u,
                     int64_t c0, int64_t n, float* t, int64_t ld) {
  const int64_t stride = row_bytes(w.format, w.cols), r = units.first_row(u);
  const uint8_t* wr = storage(w) + (r0 + r) * stride;
  if (u < units.panels && k.panel_dequant)  // a panel's blocks lie column block after column block
    return k.panel_dequant(wr + kPanelRows * row_bytes(w.format, c0), n, t + r * ld, ld);
  if (u < units.panels) wr = panel_as_rows(w.format, wr, w.cols);
  for (int64_t i = 0; i < units.rows(u); ++i) k.dequant(wr + i * stride + row_bytes(w.format, c0), n, t + (r + i) * ld);
}

// The fp32 tile buffer of the calling thread, grown as needed and kept.
torch::Tensor tile_buffer(int64_t tile_rows, int64_t cols) {
  thread_local torch::Tensor buffer;
  if (!buffer.defined() || buffer.numel() < tile_rows * cols) buffer = torch::empty({tile_rows * cols}, torch::kFloat);
  return buffer.narrow(0, 0, tile_rows * cols).view({tile_rows, cols});
}

// Calls fn(r0, tile) for consecutive tiles of W's rows, tile [r1 - r0, cols] fp32 (the same buffer each time).
template <class Fn>
void for_each_dequantised_tile(const PackedWeight& w, const FormatKernels& k, Fn&& fn) {
  const int64_t cols = w.cols;
  const int64_t tile_rows =  // whole panels
      std::clamp<int64_t>(kTileFloats / std::max<int64_t>(1, cols), 16, std::max<int64_t>(16, w.rows)) / kPanelRows *
      kPanelRows;
  for (int64_t r0 = 0; r0 < w.rows; r0 += tile_rows) {
    const int64_t n = std::min(tile_rows, w.rows - r0);
    auto tile = tile_buffer(tile_rows, cols).narrow(0, 0, n);
    float* t = tile.data_ptr<float>();
    const auto units = row_units(w, r0, n);
    parallel_rows(units.count, unit_grain(w, units), [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) dequantise_unit(w, k, units, r0, u, 0, cols, t, cols);
    });
    fn(r0, tile);
  }
}

#if defined(__x86_64__)
// y [M, rows] = x [M, cols] · Wᵀ through the AVX-512 GEMM (gemm.h). The threads share W's panels of 64
// rows. fp32 and 16-bit rows are packed from the weight itself; block formats are dequantised into the
// thread's tile buffer and packed from there, or, where all 64 rows are row panels, dequantised straight
// into the packed layout (a 7B-shaped q4_0 prefill of 32 tokens spent as long packing as multiplying
// before; 2026-12-07, Xeon).
static_assert(kGemmPanelRows % kPanelRows == 0, "a GEMM panel must hold whole weight panels");
static_assert(kGemmDepth % kQuantBlock == 0, "a GEMM depth block must hold whole quantization blocks");
void gemm_linear(const float* x, int64_t M, const PackedWeight& w, const FormatKernels& k, float* y) {
  const int64_t cols = w.cols, panels = (w.rows + kGemmPanelRows - 1) / kGemmPanelRows;
  parallel_rows(panels, 1, [&](int64_t p0, int64_t p1) {
    float* rows = tile_buffer(2 * kGemmPanelRows, cols).data_ptr<float>();
    float* packed = rows + kGemmPanelRows * cols;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t r0 = p * kGemmPanelRows, n = std::min(kGemmPanelRows, w.rows - r0);
      if (const auto units = row_units(w, r0, n);
          k.panel_dequant_columns && n == kGemmPanelRows && units.panels * kPanelRows == kGemmPanelRows) {
        // A depth block at a time, as the GEMM walks K anyway: its 64 KB stay in L2 between written and read.
        const int64_t stride = row_bytes(w.format, cols);
        for (int64_t k0 = 0; k0 < cols; k0 += kGemmDepth) {
          const int64_t kc = std::min(kGemmDepth, cols - k0);
          for (int64_t u = 0; u < units.panels; ++u)
            k.panel_dequant_columns(storage(w) + (r0 + u * kPanelRows) * stride + kPanelRows * row_bytes(w.format, k0),
                                    kc, packed + u * kPanelRows, kGemmPanelRows);
          gemm_packed_avx512(x + k0, cols, M, packed, kc, n, y + r0, w.rows, k0 > 0);
        }
        continue;
      }
      const void* b = storage(w) + r0 * row_bytes(w.format, cols);
      if (is_block_format(w.format)) {
        const auto units = row_units(w, r0, n);
        for (int64_t u = 0; u < units.count; ++u) dequantise_unit(w, k, units, r0, u, 0, cols, rows, cols);
        b = rows;
      }
      gemm_panel_avx512(x, M, cols, b, is_block_format(w.format) ? F::f32 : w.format, n, y + r0, w.rows, packed);
    }
  });
}

// Asks L2 for the bytes of W[k0:k0+kc, c0:c0+n] (one piece per unit of rows, a unit's width apart).
void prefetch_block(const PackedWeight& w, int64_t k0, int64_t kc, int64_t c0, int64_t n) {
  const int64_t stride = row_bytes(w.format, w.cols), offset = row_bytes(w.format, c0), len = row_bytes(w.format, n);
  const auto units = row_units(w, k0, kc);
  for (int64_t u = 0; u < units.count; ++u) {
    const int64_t rows = units.rows(u);
    const uint8_t* p = storage(w) + (k0 + units.first_row(u)) * stride + rows * offset;
    for (int64_t b = 0; b < rows * len; b += 64) _mm_prefetch(reinterpret_cast<const char*>(p + b), _MM_HINT_T1);
  }
}

// dx [M, cols] = dy [M, rows] · W through the AVX-512 GEMM. The threads share dx's panels of 64 columns;
// for each, W's rows are dequantised kGemmDepth at a time straight into the GEMM's packed layout (row k
// of the block is W[k, c0:c0+64], so no transpose) and multiplied for every row of dy, each block adding
// to dx after the first.
static_assert(kGemmDepth % kPanelRows == 0, "a block of W's rows must hold whole panels (row_units)");
void gemm_input_grad(const float* dy, int64_t M, const PackedWeight& w, const FormatKernels& k, float* dx) {
  const int64_t cols = w.cols, panels = (cols + kGemmPanelRows - 1) / kGemmPanelRows;
  parallel_rows(panels, 1, [&](int64_t p0, int64_t p1) {
    auto block = tile_buffer(kGemmDepth, kGemmPanelRows);  // [k][64]
    float* bp = block.data_ptr<float>();
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t c0 = p * kGemmPanelRows, n = std::min(kGemmPanelRows, cols - c0);
      if (n < kGemmPanelRows) block.zero_();  // lanes past n: read by the GEMM, their products dropped
      for (int64_t k0 = 0; k0 < w.rows; k0 += kGemmDepth) {
        const int64_t kc = std::min(kGemmDepth, w.rows - k0);
        const auto units = row_units(w, k0, kc);
        for (int64_t u = 0; u < units.count; ++u) dequantise_unit(w, k, units, k0, u, c0, n, bp, kGemmPanelRows);
        if (k0 + kc < w.rows) prefetch_block(w, k0 + kc, std::min(kGemmDepth, w.rows - k0 - kc), c0, n);
        gemm_packed_avx512(dy + k0, w.rows, M, bp, kc, n, dx + c0, cols, k0 > 0);
      }
    }
  });
}
#endif

// Uninitialised, x's shape with `n` in its last dimension, x's dtype and device.
torch::Tensor empty_with_features(const torch::Tensor& x, int64_t n) {
  auto sizes = x.sizes().vec();
  sizes.back() = n;
  return torch::empty(sizes, x.options());
}

void check_layout(const PackedWeight& w) {
  if (w.layout == BlockLayout::panels && !is_block_format(w.format))
    fail("linear: a {} weight cannot lie in row panels (block formats only)", weight_format_name(w.format));
}

bool fast_path(const torch::Tensor& x, const PackedWeight& w) {
  check_layout(w);
  return x.device().is_cpu() && w.data.device().is_cpu() && x.scalar_type() == torch::kFloat;
}

void check_kernel(LinearKernel kernel) {
  if (!linear_kernel_available(kernel))
    fail("linear: the {} kernel needs an x86-64 CPU with {} (this one lacks one of them)", linear_kernel_name(kernel),
         kernel == LinearKernel::avx512_vnni ? "AVX-512F, AVX-512 VNNI, AVX2, FMA and F16C"
         : kernel == LinearKernel::avx512    ? "AVX-512F, AVX2, FMA and F16C"
                                             : "AVX2, FMA and F16C");
}

// One dense stored row `a` dotted with one fp32 row `b`, through a row kernel.
template <RowDot Dot>
float dot_row(const void* a, const float* b, int64_t n) {
  float out;
  Dot(static_cast<const uint8_t*>(a), &b, n, &out);
  return out;
}

template <F Fmt>
DotKernel dot_kernel_for(LinearKernel kernel) {
#if defined(__x86_64__)
  if (uses_avx512(kernel)) return dot_row<dot_avx512<Fmt, 1>>;
  if (kernel == LinearKernel::avx2) return dot_row<dot_avx2<Fmt, 1>>;
#endif
  return dot_row<dot_scalar<Fmt, 1>>;
}

}  // namespace

DotKernel dot_kernel(LinearKernel kernel, WeightFormat a_format) {
  check_kernel(kernel);
  switch (a_format) {
    case F::f32: return dot_kernel_for<F::f32>(kernel);
    case F::f16: return dot_kernel_for<F::f16>(kernel);
    case F::bf16: return dot_kernel_for<F::bf16>(kernel);
    default: fail("dot_kernel: {} rows are not dense", weight_format_name(a_format));
  }
}

bool linear_kernel_available(LinearKernel kernel) {
  const auto& f = cpu_features();
  switch (kernel) {
    case LinearKernel::scalar: return true;
    case LinearKernel::avx2: return f.avx2 && f.fma && f.f16c;
    case LinearKernel::avx512: return f.avx512f && f.avx2 && f.fma && f.f16c;
    case LinearKernel::avx512_vnni: return f.avx512vnni && f.avx512f && f.avx2 && f.fma && f.f16c;
  }
  return false;
}

const char* linear_kernel_name(LinearKernel kernel) {
  switch (kernel) {
    case LinearKernel::scalar: return "scalar";
    case LinearKernel::avx2: return "avx2";
    case LinearKernel::avx512: return "avx512";
    case LinearKernel::avx512_vnni: return "avx512_vnni";
  }
  return "?";
}

LinearKernel default_linear_kernel() {
  static const LinearKernel kernel = [] {
    const auto limit = simd_limit();
    if (limit >= SimdLevel::avx512_vnni && linear_kernel_available(LinearKernel::avx512_vnni))
      return LinearKernel::avx512_vnni;
    if (limit >= SimdLevel::avx512 && linear_kernel_available(LinearKernel::avx512)) return LinearKernel::avx512;
    if (limit >= SimdLevel::avx2 && linear_kernel_available(LinearKernel::avx2)) return LinearKernel::avx2;
    return LinearKernel::scalar;
  }();
  return kernel;
}

BlockLayout preferred_layout(WeightFormat f) {
  const auto k = default_linear_kernel();
  const bool panels = is_block_format(f) && (uses_avx512(k) || (f == F::q4_0 && k == LinearKernel::avx2));
  return panels ? BlockLayout::panels : BlockLayout::rows;
}

torch::Tensor linear(const torch::Tensor& x, const PackedWeight& w) { return linear(x, w, default_linear_kernel()); }

torch::Tensor linear_input_grad(const torch::Tensor& dy, const PackedWeight& w) {
  return linear_input_grad(dy, w, default_linear_kernel());
}

std::vector<torch::Tensor> linear_shared_input(const torch::Tensor& x, const std::vector<PackedWeight>& ws) {
  return linear_shared_input(x, ws, default_linear_kernel());
}

torch::Tensor linear(const torch::Tensor& x, const PackedWeight& w, LinearKernel kernel) {
  check_kernel(kernel);
  if (x.dim() == 0 || x.size(-1) != w.cols)
    fail("linear: input has {} features, the weight expects {}", x.dim() ? x.size(-1) : 0, w.cols);
  if (!fast_path(x, w)) return torch::matmul(x, unpack_weight(w, x.scalar_type()).t());

  torch::NoGradGuard no_grad;  // W is frozen; the caller's autograd function owns the graph
  const auto xc = x.contiguous();
  const int64_t M = c10::multiply_integers(x.sizes().slice(0, x.dim() - 1));
  auto y = empty_with_features(x, w.rows);
  if (M == 0 || w.rows == 0) return y;
  if (w.cols == 0) return y.zero_();
  if (M <= kSmallBatchRows) {  // from the pointers: a decode step's calls take no view op
    const PackedWeight* ws[] = {&w};
    float* ys[] = {y.data_ptr<float>()};
    linear_rows(xc.data_ptr<float>(), M, w.cols, ws, ys, 1, kernel);
    return y;
  }
  const auto k = kernels_for(w.format, kernel);
  const auto x2 = xc.view({M, w.cols});  // [M, cols]
  auto y2 = y.view({M, w.rows});         // [M, rows]
#if defined(__x86_64__)
  if (uses_avx512(kernel)) {
    gemm_linear(x2.data_ptr<float>(), M, w, k, y2.data_ptr<float>());
    return y;
  }
#endif
  if (w.format == F::f32) {
    at::mm_out(y2, x2, w.data.t());
  } else {
    // y[:, r0:r0+n] = x · tileᵀ, written in place (BLAS takes the output's row stride).
    for_each_dequantised_tile(w, k, [&](int64_t r0, const torch::Tensor& tile) {
      auto out = y2.narrow(1, r0, tile.size(0));
      at::mm_out(out, x2, tile.t());
    });
  }
  return y;
}

std::vector<torch::Tensor> linear_shared_input(const torch::Tensor& x, const std::vector<PackedWeight>& ws,
                                               LinearKernel kernel) {
  check_kernel(kernel);
  const int64_t M = x.dim() && x.size(-1) ? x.numel() / x.size(-1) : 0;
  bool row_kernels = M >= 1 && M <= kSmallBatchRows;
  for (const auto& w : ws) row_kernels = row_kernels && x.size(-1) == w.cols && w.rows > 0 && fast_path(x, w);
  std::vector<torch::Tensor> ys;
  if (!row_kernels) {  // checks, other paths and empty shapes as linear() has them
    for (const auto& w : ws) ys.push_back(linear(x, w, kernel));
    return ys;
  }
  torch::NoGradGuard no_grad;
  const auto xc = x.contiguous();
  std::vector<const PackedWeight*> wp;
  std::vector<float*> yp;
  for (const auto& w : ws) {
    ys.push_back(empty_with_features(x, w.rows));
    wp.push_back(&w);
    yp.push_back(ys.back().data_ptr<float>());
  }
  linear_rows(xc.data_ptr<float>(), M, x.size(-1), wp.data(), yp.data(), static_cast<int>(ws.size()), kernel);
  return ys;
}

void linear_rows(const float* x, int64_t M, int64_t cols, const PackedWeight* const* ws, float* const* ys, int n,
                 LinearKernel kernel) {
  check_kernel(kernel);
  if (M < 1 || M > kSmallBatchRows) fail("linear_rows: {} rows of x (1 to {})", M, kSmallBatchRows);
  if (n < 1) fail("linear_rows: {} weights", n);
  std::array<RowJob, 8> few;  // a layer's q/k/v or gate/up: no allocation
  std::vector<RowJob> many(n > static_cast<int>(few.size()) ? n : 0);
  RowJob* jobs = many.empty() ? few.data() : many.data();
  for (int j = 0; j < n; ++j) {
    const PackedWeight& w = *ws[j];
    if (w.cols != cols || w.rows < 1 || !w.data.device().is_cpu())
      fail("linear_rows: weight {} is [{}, {}] on {}, expected a CPU weight of {} columns and at least one row", j,
           w.rows, w.cols, w.data.device().str(), cols);
    check_layout(w);
    jobs[j] = RowJob(w, kernels_for(w.format, kernel), ys[j]);
  }
  row_kernel_linear(x, M, jobs, n);
}

torch::Tensor linear_input_grad(const torch::Tensor& dy, const PackedWeight& w, LinearKernel kernel) {
  check_kernel(kernel);
  if (dy.dim() == 0 || dy.size(-1) != w.rows)
    fail("linear_input_grad: gradient has {} features, the weight has {} rows", dy.dim() ? dy.size(-1) : 0, w.rows);
  if (!fast_path(dy, w)) return torch::matmul(dy, unpack_weight(w, dy.scalar_type()));

  torch::NoGradGuard no_grad;
  const auto dy2 = dy.reshape({-1, w.rows}).contiguous();  // [M, rows]
  const int64_t M = dy2.size(0);
  auto dx = empty_with_features(dy, w.cols);
  auto dx2 = dx.view({M, w.cols});  // [M, cols]
  if (M == 0 || w.cols == 0) return dx;
  if (w.rows == 0) return dx.zero_();
  const auto k = kernels_for(w.format, kernel);
#if defined(__x86_64__)
  if (uses_avx512(kernel)) {
    gemm_input_grad(dy2.data_ptr<float>(), M, w, k, dx2.data_ptr<float>());
    return dx;
  }
#endif
  if (w.format == F::f32) {
    at::mm_out(dx2, dy2, w.data);
    return dx;
  }
  // dx = Σ_tiles dy[:, r0:r0+n] · tile: the backward runs at training batch sizes, where the GEMM wins.
  for_each_dequantised_tile(w, k, [&](int64_t r0, const torch::Tensor& tile) {
    const auto dy_part = dy2.narrow(1, r0, tile.size(0));
    if (r0 == 0) at::mm_out(dx2, dy_part, tile);
    else dx2.addmm_(dy_part, tile);
  });
  return dx;
}

}  // namespace cb::kernels
