// The optimiser as the original runner builds it (pipeline.md §8.1): torch.optim.AdamW over
// model.parameters() in ONE param group — weight decay applies to every trainable tensor, biases,
// norms and query tokens included — with betas (0.9, 0.999) and eps 1e-8.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <vector>

namespace cb {

struct AdamWSettings {
  double lr = 1e-4;            // run.init_lr (the schedule overwrites it every step)
  double weight_decay = 0.05;  // run.weight_decay
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

// Only parameters that require grad are handed over: frozen ones never receive a gradient, so the
// original's AdamW skips them anyway.
std::unique_ptr<torch::optim::AdamW> make_adamw(const torch::nn::Module& model, const AdamWSettings& s);

// optimizer.zero_grad() with PyTorch <= 1.13 semantics (set_to_none=False): gradients are zeroed in
// place, so a tensor that once had a gradient keeps being updated (moments and decay) on steps where it
// is unused — the original's numbers depend on it (e.g. audio_query_tokens on image batches).
void zero_grad_keep(torch::optim::Optimizer& opt);

// Global L2 norm of the gradients present (for logs).
double grad_norm(const torch::optim::Optimizer& opt);

}  // namespace cb
