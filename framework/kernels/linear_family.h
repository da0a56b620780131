// The three families of CPU kernels behind linear.h, one file each: scalar (portable, linear_scalar.cpp),
// AVX2+FMA+F16C (linear_avx2.cpp) and AVX-512F (linear_avx512.cpp). The SIMD ones are compiled with
// function-level target attributes, since the build targets generic x86-64; avx512_vnni is AVX-512F with
// q4_0 panels through q4_0_vnni.h; avx2 lays q4_0 out in panels too, read through q4_0_avx2.h. Each
// family gives, per storage format:
//   row dot   y[m] = Σ_c W[r, c] x[m, c] for up to 4 rows of x against one stored row of W, decoding W in
//             registers. Block formats sum q·x over a block of 32 and scale by the block's d once
//             (d·Σ q x rather than Σ (d q) x: one multiply per block, not per element; equal up to fp32
//             rounding, as d·q is exact in fp32).
//   dequant   a stored row to fp32, bit for bit what unpack_weight gives (d·q is exact in fp32).
// linear.cpp picks a family and shares the rows out among the threads. Internal to the kernels.
#pragma once
#include <c10/util/Half.h>

#include <array>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "framework/error.h"
#include "framework/kernels/linear.h"
#include "framework/kernels/weight_format.h"

namespace cb::kernels::family {

// Up to this many rows of x share one pass over a weight row (accumulators held in registers).
constexpr int kRowGroup = 4;

// One stored row · up to kRowGroup rows of x: out[i] = Σ_c W[c] x[i][c].
using RowDot = void (*)(const uint8_t* w, const float* const* x, int64_t cols, float* out);
// One stored row -> cols floats.
using RowDequant = void (*)(const uint8_t* w, int64_t cols, float* out);
// One panel of 16 stored rows (weight_format.h) · up to kRowGroup rows of x: out[i * 16 + r] = Σ_c W[r, c] x[i][c].
using PanelDot = void (*)(const uint8_t* panel, const float* const* x, int64_t cols, float* out);
// One panel of 16 stored rows -> 16 x cols floats, row r at out + r * ld.
using PanelDequant = void (*)(const uint8_t* panel, int64_t cols, float* out, int64_t ld);

// What x the panels take: floats through panel_dot, or x prepared once per call for q4_0 on avx512_vnni
// (q4_0_vnni.h) and on avx2 (q4_0_avx2.h, the family's only panel kernel).
enum class PanelX { floats, vnni, avx2 };

// One family's kernels for one storage format.
struct FormatKernels {
  std::array<RowDot, kRowGroup> dot;  // dot[n - 1] takes n rows of x
  RowDequant dequant;
  DotKernel dot_one;  // dot[0] as a DotKernel (dot_kernel's)
  // Block formats: panel_dot[n - 1] takes n rows of x, panel_dequant a panel; empty: panels are taken apart
  // into rows first (families without panel kernels; panels are only laid out where the AVX-512 family
  // runs, or q4_0 where avx2 does: preferred_layout).
  std::array<PanelDot, kRowGroup> panel_dot{};
  PanelDequant panel_dequant = nullptr;
  // A panel's column c at out + c * ld (the AVX-512 GEMM's packed layout), where the family has one.
  PanelDequant panel_dequant_columns = nullptr;
  PanelX panel_x = PanelX::floats;
};

// make.template operator()<Fmt>() for the format f: the families' tables over the five formats.
template <class Make>
FormatKernels for_format(WeightFormat f, Make&& make) {
  switch (f) {
    case WeightFormat::f32: return make.template operator()<WeightFormat::f32>();
    case WeightFormat::bf16: return make.template operator()<WeightFormat::bf16>();
    case WeightFormat::f16: return make.template operator()<WeightFormat::f16>();
    case WeightFormat::q8_0: return make.template operator()<WeightFormat::q8_0>();
    case WeightFormat::q4_0: return make.template operator()<WeightFormat::q4_0>();
  }
  fail("linear: unknown weight format");
}

FormatKernels scalar_kernels(WeightFormat f);
#if defined(__x86_64__)
FormatKernels avx2_kernels(WeightFormat f);
FormatKernels avx512_kernels(WeightFormat f, bool vnni);
#endif

// One stored row `a` dotted with one fp32 row `b`, through a row kernel.
template <RowDot Dot>
float dot_row(const void* a, const float* b, int64_t n) {
  float out;
  Dot(static_cast<const uint8_t*>(a), &b, n, &out);
  return out;
}

inline float half_bits_to_float(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return c10::detail::fp16_ieee_to_fp32_value(h);
}

// Element c of a dense stored row.
template <WeightFormat Fmt>
inline float dense_at(const uint8_t* w, int64_t c) {
  if constexpr (Fmt == WeightFormat::f32) {
    float v;
    std::memcpy(&v, w + 4 * c, 4);
    return v;
  } else if constexpr (Fmt == WeightFormat::bf16) {
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
template <WeightFormat Fmt>
inline void block_values(const uint8_t* blk, float q[32]) {
  if constexpr (Fmt == WeightFormat::q8_0) {
    for (int j = 0; j < 32; ++j) q[j] = static_cast<float>(static_cast<int8_t>(blk[2 + j]));
  } else {
    for (int j = 0; j < 16; ++j) {
      q[j] = static_cast<float>((blk[2 + j] & 0x0F) - 8);
      q[j + 16] = static_cast<float>((blk[2 + j] >> 4) - 8);
    }
  }
}

#if defined(__x86_64__)
// Weight bytes ahead of the current read that a row kernel asks the cache for: the hardware prefetcher
// alone leaves ~10 % of the read bandwidth unused on a single stream (measured on Zen: fp32 GEMV 44 ->
// 48 GB/s). Prefetching past the end of the weight is harmless (prefetches never fault).
constexpr int64_t kPrefetchBytes = 1024;

inline void prefetch_line(const uint8_t* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }
#endif

}  // namespace cb::kernels::family
