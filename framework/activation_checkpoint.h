// Activation ("gradient") checkpointing: run `fn` without keeping its intermediate activations and
// recompute them in backward. Reproduces torch.utils.checkpoint.checkpoint with its PyTorch 1.13
// defaults (re-entrant, RNG state of the input's device preserved, so dropout/drop-path masks are the
// same in the recomputation). LibTorch has no C++ checkpoint API, hence this custom autograd function.
// As in the re-entrant original, nothing inside `fn` gets a gradient unless `x` requires grad.
#pragma once
#include <torch/torch.h>

#include <functional>

namespace cb {

torch::Tensor checkpoint(std::function<torch::Tensor(const torch::Tensor&)> fn, const torch::Tensor& x);

}  // namespace cb
