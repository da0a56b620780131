// q4_0 row panels (weight_format.h) times fp32 x through AVX-512 VNNI's 8-bit dot products, with the
// products summed exactly: linear.h's avx512_vnni family for q4_0 panels.
//
// Why: the lookup kernel (linear_avx512.cpp) spends a widening or shift, a table lookup and an FMA on each 16
// weights, so with two threads it decodes about as fast as memory delivers and no faster. One VPDPBUSD
// takes 64 weights (16 rows x 4 columns) against 4 bytes of x; x in four bytes makes that ~2 instructions
// per 32 weights, where the lookup kernel needs ~4.
//
// How x stays exact. Each block of 32 elements of an x row is written as integers X_j = round(x_j · 2^s),
// one power of two per block with |X| < 2^30, in four signed bytes: X = Σ_k 256^k d_k, d_k in [-128, 127].
// VNNI sums the products q·d_k in 32-bit integers, so Σ_j (q_j − 8)·X_j is exact. An element within 2^6 of
// its block's largest binade is exactly X_j · 2^-s; a smaller one leaves a remainder r_j = x_j − X_j·2^-s
// (exact in fp32), and those columns (few: activations rarely span 2^6 within 32 elements) add
// (q_j − 8)·r_j in fp32. So the result is a sum of the exact products (q − 8)·x_j in some fp32 order, as
// every other kernel's (test_linear.cpp's bound holds unchanged). A block with an element that is not
// finite, or as large as 2^30, goes wholly through the fp32 remainders (infinities and NaNs propagate).
#pragma once
#include <cstdint>

#include "framework/kernels/q4_0_x_rest.h"

namespace cb::kernels {

// One block of 32 elements of an x row, prepared for q4_0_vnni_panel_dot.
struct alignas(64) Q4VnniBlock {
  // digits[k][g]: the bytes d_k of columns 4g..4g+3 (g < 4) or 4(g − 4) + 16..19 (g >= 4): the low and
  // high nibbles of a panel chunk's 32-bit lanes (weight_format.h).
  uint32_t digits[4][8];
  int32_t start[4];  // −8 · Σ_j d_k,j: the sums of q·d_k start there, so they end as Σ (q − 8)·d_k
  Q4XRest rest;      // the block's 2^-s and remainders
};

// x [cols] (cols % 32 == 0) -> cols / 32 blocks. Needs AVX-512F and VNNI (linear.h: avx512_vnni).
void q4_0_vnni_prepare(const float* x, int64_t cols, Q4VnniBlock* out);

// One panel of 16 q4_0 rows · n (1..4) prepared rows of x: out[i * 16 + r] = Σ_c W[r, c] x[i][c].
void q4_0_vnni_panel_dot(int n, const uint8_t* panel, const Q4VnniBlock* const* x, int64_t cols, float* out);

}  // namespace cb::kernels
