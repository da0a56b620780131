// y = x · Bᵀ for fp32 x [M, K] and a panel of up to 64 fp32 rows of B [n, K] (AVX-512F): the GEMM
// behind linear() for more rows of x than the row kernels take (prefill, eval batches, training's
// forward through the frozen LLM), where the AVX-512 family runs.
//
// Why our own: OpenBLAS may run its AVX2 kernels on an AVX-512 CPU (its CPU detection does not know
// every model, and OPENBLAS_CORETYPE can pin it), at half the FMA width. On 2 Zen 5 cores, over the
// medium LLaMA's layers at 128 rows of x, its Haswell sgemm ran at ~165 GFLOP/s, this one at ~325
// (bench/RESULTS.md, 2026-12-06).
//
// The panel is packed, 16 rows at a time through an in-register transpose, into the caller's buffer
// as [k][64] (column k of the 64 rows is one 256-byte line, rows past n zero), so that the
// micro-kernel holds a 6 x 64 block of y in 24 registers and per k loads 4 vectors of B and multiplies
// each by one x value broadcast from memory (24 FMAs). K is walked in blocks of 256, each packed just
// before it is multiplied, so its 64 KB of B stay in L2 while every 6 rows of x pass over them. Each y element is Σ_k
// in k order within a block, blocks added in order: exact up to fp32 summation order.
#pragma once
#include <cstdint>

#include "framework/kernels/weight_format.h"

namespace cb::kernels {

// Rows of B one gemm_panel call takes.
constexpr int64_t kGemmPanelRows = 64;
// Depth of the blocks the micro-kernel walks K in: 64 KB of packed B, held in L2 across the rows of x.
constexpr int64_t kGemmDepth = 256;

// y[m, j] = Σ_k x[m, k] · b[j, k] for m < M, j < n <= kGemmPanelRows; x row stride K, b row stride K
// (stored as `rows`: fp32, or bf16/fp16 widened while packing, so a 16-bit weight needs no fp32 copy), y row stride ldy
// (y may be a column slice of a wider output), K >= 1; `packed` is the caller's workspace of min(K, kGemmDepth) *
// kGemmPanelRows floats (64-byte aligned for speed, e.g. a tensor's storage). x86-64 only, and needs AVX-512F
// (linear.h's avx512 family).
void gemm_panel_avx512(const float* x, int64_t M, int64_t K, const void* b, WeightFormat rows, int64_t n, float* y,
                       int64_t ldy, float* packed);

// The product with B already in that packed layout: y[m, j] (+)= Σ_{k < K} x[m, k] · packed[k * 64 + j] for
// m < M, j < n <= kGemmPanelRows (lanes n..63 of `packed` are read and their products dropped); x row
// stride ldx, y row stride ldy; `accumulate` adds to y instead of overwriting it. For a B whose columns
// are at hand as rows (W in dx = dy · W), written straight into the layout without a transpose.
void gemm_packed_avx512(const float* x, int64_t ldx, int64_t M, const float* packed, int64_t K, int64_t n, float* y,
                        int64_t ldy, bool accumulate);

}  // namespace cb::kernels
