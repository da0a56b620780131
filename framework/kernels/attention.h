// Attention of a few new positions against a KV cache on the CPU: the decode step's attention.
//
// With LibTorch's ops a decode step's attention is two batched matmuls per layer (LibTorch 1.13 runs a
// CPU bmm as one BLAS call per head, each a 1 x Dh by Dh x T product), a softmax and the views between
// them: ~0.5 ms of a ~5 ms medium q4_0 token, nearly all of it call overhead. Here it is one pass per
// head: the scores (one dot product per cached position), softmax, then the weighted sum of the value
// rows, with the KV cache read in place (grouped-query heads index their kv head, no repeat).
#pragma once
#include <torch/torch.h>

#include "framework/kernels/linear.h"

namespace cb::kernels {

// The most new positions (L) decode_attention takes; longer inputs (prefill) go through BLAS.
constexpr int64_t kDecodeAttentionMaxPositions = kSmallBatchRows;

// Whether decode_attention takes these inputs: CPU tensors, q float32 and k, v both float32 or both
// float16 (a 16-bit KV cache), nothing that requires a gradient, L <= kDecodeAttentionMaxPositions, H a
// multiple of Hkv, and a float32 mask (or none).
bool decode_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& mask);

// softmax(q · kᵀ / √Dh + mask) · v, as the attention of models/llama.cpp computes it with matmuls (the
// softmax in fp32, exp(s − max) scaled by 1/Σ). q [B,H,L,Dh]; k, v [B,Hkv,T,Dh] (any strides, e.g. a
// view of the KV cache's buffer), query head h reading kv head h / (H / Hkv); mask undefined or
// additive, broadcastable to [B,H,L,T]. Returns [B,L,H·Dh] float32. Equal to the matmul path (over k
// and v widened to fp32) up to fp32 summation order. Fails where decode_attention_applies does not
// hold. `kernel`: the SIMD family. Scalar and AVX2: the scores through linear.h's dot_kernel for k's
// dtype, one row at a time, and the weighted sum as one o += p·v per row. AVX-512 with Dh a multiple of
// 16: the scores of 16 rows at a time (a 16 x 16 transpose sums their lanes) and the weighted sum with o
// in registers, 30 % less time than the row calls (16 heads of 128, an fp16 cache of 190 or 1000
// positions, 2 threads: 36 -> 24 us, 150 -> 98 us). Other Dh take the row calls there too.
torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& mask, LinearKernel kernel = default_linear_kernel());

}  // namespace cb::kernels
