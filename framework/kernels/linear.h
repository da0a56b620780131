// y = x · Wᵀ for a frozen weight in any storage format (framework/kernels/weight_format.h).
//
// CPU: x is float32; the SIMD kernel is chosen once at run time (AVX2+FMA+F16C where the CPU has them,
// else scalar; CHATBRIDGE_SIMD=scalar forces scalar). CUDA: dequantise, then torch::matmul in x's dtype.
// Gradients flow to x only (W is frozen); use these inside an autograd function.
#pragma once
#include <torch/torch.h>

#include "framework/kernels/weight_format.h"

namespace cb::kernels {

// x [..., cols] -> y [..., rows], same dtype and device as x.
torch::Tensor linear(const torch::Tensor& x, const PackedWeight& w);
// The input gradient of linear: dy [..., rows] -> dx = dy · W [..., cols].
torch::Tensor linear_input_grad(const torch::Tensor& dy, const PackedWeight& w);

}  // namespace cb::kernels
