// y = x · Wᵀ for a frozen weight in any storage format (framework/kernels/weight_format.h).
//
// CPU, float32 x: up to kSmallBatchRows rows of x run the row kernels, which read each stored weight row
// once, decode it in registers and take its dot product with every row of x (decode is one row and
// memory-bound: the weight bytes read are the cost). More rows (training through the frozen LLM, long
// prefill) dequantise the weight to fp32 in pieces, each multiplied for all rows of x at once: panels of
// 64 rows through the AVX-512 GEMM (gemm.h) where that family runs, else tiles of rows through the BLAS
// GEMM; so a 16-bit or quantized weight runs as fast as fp32 there. Threads split the output rows.
// linear_input_grad takes the same GEMM (W's column panels, for any number of rows) or tiles + BLAS.
// The kernel family is chosen once at run time (AVX-512F with VNNI, AVX-512F, else AVX2+FMA+F16C where the
// CPU has them, else scalar; CHATBRIDGE_SIMD=avx512, avx2 or scalar caps it). Other devices or dtypes: dequantise, then
// torch::matmul in x's dtype. Gradients flow to x only (W is frozen); use these inside an autograd function.
#pragma once
#include <torch/torch.h>

#include "framework/kernels/weight_format.h"

namespace cb::kernels {

// x [..., cols] -> y [..., rows], same dtype and device as x.
torch::Tensor linear(const torch::Tensor& x, const PackedWeight& w);
// The input gradient of linear: dy [..., rows] -> dx = dy · W [..., cols].
torch::Tensor linear_input_grad(const torch::Tensor& dy, const PackedWeight& w);

// linear(x, W_k) for weights that share x (a layer's q/k/v projections, gate/up), the same bits; where
// the row kernels run, one hand-off of the threads covers every weight (one fork-join and one start of
// each thread's stream instead of one per weight: a 2048-wide q4_0 projection reads in ~45 us).
std::vector<torch::Tensor> linear_shared_input(const torch::Tensor& x, const std::vector<PackedWeight>& ws);

// The CPU kernel family. All compute the same sums in the same order up to fp32 rounding
// (tests/framework/kernels/test_linear.cpp bounds the difference from an fp64 reference). avx512_vnni is
// avx512 but for q4_0 panels, whose products it sums exactly in 32-bit integers (q4_0_vnni.h).
enum class LinearKernel { scalar, avx2, avx512, avx512_vnni };

// Whether `kernel` is one of the AVX-512 families (their GEMM, panels and attention paths).
constexpr bool uses_avx512(LinearKernel kernel) {
  return kernel == LinearKernel::avx512 || kernel == LinearKernel::avx512_vnni;
}

// Whether this build and CPU can run `kernel` (scalar: always; avx2: x86-64 with AVX2, FMA and F16C;
// avx512: those and AVX-512F; avx512_vnni: and AVX-512 VNNI).
bool linear_kernel_available(LinearKernel kernel);
const char* linear_kernel_name(LinearKernel kernel);  // "scalar", "avx2", "avx512", "avx512_vnni"
// The widest family this CPU runs, within CHATBRIDGE_SIMD's limit (cpu_features.h).
LinearKernel default_linear_kernel();

// The layout a format's weights should be kept in on this CPU: the block formats in panels where an
// AVX-512 family is the default (its panel kernels decode 16 rows at once, ~2x the row kernels' rate from
// cache: a widening load and one FMA per 16 weights, no per-block scale broadcast), and q4_0 where avx2 is
// (q4_0_avx2.h: 1.7x its row kernel's rate), the rest in rows.
BlockLayout preferred_layout(WeightFormat f);

// The most rows of x (the product of x's leading dimensions) that take the row kernels.
constexpr int64_t kSmallBatchRows = 16;

// linear / linear_input_grad with the kernel family named (tests, benchmarks); fails when it cannot run.
torch::Tensor linear(const torch::Tensor& x, const PackedWeight& w, LinearKernel kernel);
torch::Tensor linear_input_grad(const torch::Tensor& dy, const PackedWeight& w, LinearKernel kernel);
std::vector<torch::Tensor> linear_shared_input(const torch::Tensor& x, const std::vector<PackedWeight>& ws,
                                               LinearKernel kernel);

// y_k [M, W_k.rows] = x [M, cols] · W_kᵀ from pointers for n >= 1 weights that share x: the row
// kernels of linear_shared_input without a tensor op around them (a CPU decode step:
// models/llama_decode_step.h). 1 <= M <= kSmallBatchRows, x and every y_k contiguous float32; every W_k
// on the CPU with `cols` columns and at least one row; fails otherwise.
void linear_rows(const float* x, int64_t M, int64_t cols, const PackedWeight* const* ws, float* const* ys, int n,
                 LinearKernel kernel = default_linear_kernel());

// Σ a[i]·b[i] over n elements, `a` stored in a dense format (fp32, fp16 or bf16) and `b` fp32: that
// format's row kernel of `kernel`'s family, for other kernels that take dot products (attention's scores
// over the KV cache). Fails when `kernel` cannot run or `a_format` is a block format.
using DotKernel = float (*)(const void* a, const float* b, int64_t n);
DotKernel dot_kernel(LinearKernel kernel, WeightFormat a_format = WeightFormat::f32);

}  // namespace cb::kernels
