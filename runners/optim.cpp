#include "runners/optim.h"

#include <unordered_set>

namespace cb {

std::unique_ptr<torch::optim::AdamW> make_adamw(const torch::nn::Module& model, const AdamWSettings& s) {
  std::vector<torch::Tensor> params;
  std::unordered_set<const void*> seen;  // a shared module (BEATs' bias table) is listed once per owner
  for (const auto& p : model.parameters(true))
    if (p.requires_grad() && seen.insert(p.unsafeGetTensorImpl()).second) params.push_back(p);
  auto opts = torch::optim::AdamWOptions(s.lr).betas({s.beta1, s.beta2}).eps(s.eps).weight_decay(s.weight_decay);
  return std::make_unique<torch::optim::AdamW>(params, opts);
}

void zero_grad_keep(torch::optim::Optimizer& opt) {
  for (auto& group : opt.param_groups())
    for (auto& p : group.params())
      if (p.mutable_grad().defined()) {
        p.mutable_grad().detach_();
        p.mutable_grad().zero_();
      }
}

double grad_norm(const torch::optim::Optimizer& opt) {
  double sq = 0;
  for (const auto& group : opt.param_groups())
    for (const auto& p : group.params())
      if (p.grad().defined()) sq += p.grad().to(torch::kDouble).pow(2).sum().item<double>();
  return std::sqrt(sq);
}

}  // namespace cb
