// LLaMA's RMSNorm of a few rows in one pass on the CPU (a decode step's norms). With LibTorch's ops it
// is seven (pow, mean, add, rsqrt, two multiplies, a dtype conversion), each a dispatch and an output
// tensor: at a decode step's handful of rows that overhead is all of its cost.
#pragma once
#include <torch/torch.h>

#include "framework/kernels/linear.h"

namespace cb::kernels {

// Whether rms_norm takes these inputs: float32 CPU x of at most kSmallBatchRows rows (the product of its
// leading dimensions) and a CPU weight of float32, bfloat16 or float16; no gradient
// recorded (grad mode off, or neither requires one: a trainable norm generating under no_grad qualifies).
bool rms_norm_applies(const torch::Tensor& x, const torch::Tensor& weight);

// weight · x / √(mean(x²) + eps) over the last dimension, as models/llama.cpp's LlamaRMSNorm computes it on
// the CPU (fp32 throughout, a 16-bit weight widened): x [..., D], weight [D] -> [..., D] float32. Equal up
// to fp32 summation order. Fails where rms_norm_applies does not hold.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// The same from pointers: x, y [rows, D] contiguous float32 (y may be x), D = weight.size(0). Fails unless
// weight is a contiguous CPU [D] of float32, bfloat16 or float16.
void rms_norm(const float* x, int64_t rows, const torch::Tensor& weight, double eps, float* y);

}  // namespace cb::kernels
