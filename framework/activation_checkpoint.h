// Activation ("gradient") checkpointing: run `fn` without keeping its intermediate activations and
// recompute them in backward. Reproduces torch.utils.checkpoint.checkpoint with its PyTorch 1.13
// defaults (re-entrant, RNG state of the input's device preserved, so dropout/drop-path masks are the
// same in the recomputation). LibTorch has no C++ checkpoint API, hence this custom autograd function.
// As in the re-entrant original, only the tensors passed as inputs carry gradients out of the
// checkpoint: nothing inside `fn` gets a gradient unless some input requires grad, and a tensor `fn`
// captures instead of receiving it as an input gets none.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

namespace cb {

torch::Tensor checkpoint(std::function<torch::Tensor(const torch::Tensor&)> fn, const torch::Tensor& x);

// Several inputs (e.g. a BERT layer's hidden states, masks and encoder states); the RNG state saved
// is that of the first input's device. Undefined inputs are passed through as undefined.
torch::Tensor checkpoint(std::function<torch::Tensor(const std::vector<torch::Tensor>&)> fn,
                         const std::vector<torch::Tensor>& inputs);

}  // namespace cb
