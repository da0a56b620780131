// q4_0 row panels (weight_format.h) times fp32 x through AVX2's 16-bit integer dot products, with the
// products summed exactly: linear.h's avx2 family for q4_0 (it lays q4_0 out in panels, as AVX-512 does).
//
// Why: the float row kernel (linear_avx2.cpp) widens each nibble to a float, two shuffles and a conversion per
// 8 weights: ~3.3 ns a block on a Zen 3 core, where two cores' share of the read bandwidth leaves ~1 ns. In
// a panel one 32-byte load holds 4 quant bytes of 8 rows, one 32-bit lane per row; masked and shifted it is
// two elements of each row as 16-bit integers, and one VPMADDWD against two elements of x (broadcast) adds
// both products into each row's lane. Per block the conversion to float and the scales are paid once for 8
// rows, not once per row.
//
// How x stays exact (as q4_0_vnni.h, with two 15-bit digits instead of four bytes). Each block of 32
// elements of an x row is written as integers X_j = round(x_j · 2^s), one power of two per block with
// |X| < 2^30, as X = d0 + 2^15·d1, d0 in [0, 2^15), d1 in [−2^15, 2^15). The lanes sum q·d_k (q the
// unsigned nibble) from −8·Σ_j d_k,j in 32-bit integers (|sum| <= 2^23), so Σ_j (q_j − 8)·X_j is exact
// until one rounding joins the two digits. An element within 2^6 of its block's largest binade is exactly
// X_j · 2^-s; a smaller one leaves a remainder r_j = x_j·2^s − X_j (exact in fp32), and those columns add
// (q_j − 8)·r_j in fp32. A block with an element that is not finite, or as large as 2^30, goes wholly
// through the fp32 remainders (infinities and NaNs propagate). test_linear.cpp's bound holds unchanged.
#pragma once
#include <cstdint>

#include "framework/kernels/q4_0_x_rest.h"

namespace cb::kernels {

// One block of 32 elements of an x row, prepared for q4_0_avx2_panel_dot.
struct alignas(32) Q4Avx2Block {
  // pairs[k][c][m]: digit k of the two elements that nibble pair m of a panel chunk c's row lane holds, as
  // two int16 (low half: the element of byte 0 or 1 of the lane; high half: byte 2 or 3). m = 0: the low
  // nibbles of bytes 0 and 2 (elements 4c, 4c + 2); 1: low, bytes 1 and 3 (4c + 1, 4c + 3); 2: high, bytes
  // 0 and 2 (4c + 16, 4c + 18); 3: high, bytes 1 and 3 (4c + 17, 4c + 19).
  int32_t pairs[2][4][4];
  int32_t start[2];  // −8 · Σ_j d_k,j: the lanes start there, so they end as Σ (q − 8)·d_k
  Q4XRest rest;      // the block's 2^-s and remainders
};

// x [cols] (cols % 32 == 0) -> cols / 32 blocks. Needs AVX2 and FMA (linear.h: avx2).
void q4_0_avx2_prepare(const float* x, int64_t cols, Q4Avx2Block* out);

// One panel of 16 q4_0 rows · n (1..4) prepared rows of x: out[i * 16 + r] = Σ_c W[r, c] x[i][c].
void q4_0_avx2_panel_dot(int n, const uint8_t* panel, const Q4Avx2Block* const* x, int64_t cols, float* out);

// One panel of 16 q4_0 rows -> 16 x cols floats, row r at out + r * ld, bit for bit unpack_weight's.
void q4_0_avx2_panel_dequant(const uint8_t* panel, int64_t cols, float* out, int64_t ld);

}  // namespace cb::kernels
