// The greedy pick of a decode step on the CPU: the index of each row's largest score. LibTorch's argmax
// (1.13) takes ~25 us over a row of 32000 logits, ~1 % of a medium q4_0 decode token.
#pragma once
#include <torch/torch.h>

#include "framework/kernels/linear.h"

namespace cb::kernels {

// Whether argmax takes these scores: float32 on the CPU, at least one dimension, the last one non-empty.
bool argmax_applies(const torch::Tensor& scores);

// scores [..., V] -> [...] int64: per row the index torch::argmax(scores, -1) gives, the first maximum, or
// the first NaN where a row has one. `kernel` picks the scalar or a SIMD loop (any but scalar: AVX2).
// Fails where argmax_applies does not hold or the kernel cannot run here.
torch::Tensor argmax(const torch::Tensor& scores, LinearKernel kernel = default_linear_kernel());

}  // namespace cb::kernels
