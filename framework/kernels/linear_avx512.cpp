// The AVX-512F family of linear_family.h: 16 lanes, rows and the block formats' row panels; q4_0 panels
// through q4_0_vnni.h where the CPU has VNNI (avx512_vnni).
#include "framework/kernels/linear_family.h"

#if defined(__x86_64__)
#include "framework/kernels/avx512_dense.h"
#include "framework/kernels/avx512_transpose.h"

namespace cb::kernels::family {
namespace {

using F = WeightFormat;

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

}  // namespace

FormatKernels avx512_kernels(WeightFormat f, bool vnni) {
  return for_format(f, [vnni]<F Fmt>() {
    FormatKernels out{{dot_avx512<Fmt, 1>, dot_avx512<Fmt, 2>, dot_avx512<Fmt, 3>, dot_avx512<Fmt, 4>},
                      dequant_avx512<Fmt>,
                      dot_row<dot_avx512<Fmt, 1>>};
    if constexpr (Fmt == F::q8_0 || Fmt == F::q4_0) {
      out.panel_dot = {panel_dot_avx512<Fmt, 1>, panel_dot_avx512<Fmt, 2>, panel_dot_avx512<Fmt, 3>,
                       panel_dot_avx512<Fmt, 4>};
      out.panel_dequant = panel_dequant_avx512<Fmt>;
      out.panel_dequant_columns = panel_dequant_columns_avx512<Fmt>;
    }
    if (Fmt == F::q4_0 && vnni) out.panel_x = PanelX::vnni;
    return out;
  });
}

}  // namespace cb::kernels::family
#endif
