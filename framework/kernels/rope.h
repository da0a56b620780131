// Rotary position embedding of a few positions in one pass on the CPU (a decode step's q and k). With
// LibTorch's ops, x·cos + rotate_half(x)·sin is seven ops (two narrows, a negation, a cat, two multiplies,
// an add) per tensor, per layer: at a decode step's one position the dispatch is all of its cost.
#pragma once
#include <torch/torch.h>

namespace cb::kernels {

// Whether rope takes these inputs: float32 CPU tensors, none requiring a gradient, x [B,H,L,Dh] with L <=
// kSmallBatchRows (linear.h) and Dh even, cos and sin [B,1,L,Dh].
bool rope_applies(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// x·cos + rotate_half(x)·sin, rotate_half(x) = cat(−x[..., Dh/2:], x[..., :Dh/2]), as models/llama.cpp
// applies it: [B,H,L,Dh], laid out as [B,L,H,Dh] in memory (the layout of the projection it came from).
// Equal up to fp32 rounding (the compiler may fuse a multiply into the add). Fails where rope_applies does
// not hold.
torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// The same for one position from pointers: x, out [heads, Dh] contiguous float32 (out may be x), cos and
// sin [Dh] of that position. Fails for an odd Dh.
void rope(const float* x, int64_t heads, int64_t Dh, const float* cos, const float* sin, float* out);

}  // namespace cb::kernels
