#include "runners/train/grad_scaler.h"

namespace cb {

bool GradScaler::step(torch::optim::Optimizer& opt) {
  torch::NoGradGuard ng;
  bool finite = true;
  for (auto& group : opt.param_groups())
    for (auto& p : group.params()) {
      auto& g = p.mutable_grad();
      if (!g.defined()) continue;
      g.mul_(1.0 / scale_);
      if (finite && !torch::isfinite(g).all().item<bool>()) finite = false;
    }
  if (finite) {
    opt.step();
    if (++growth_tracker_ == kGrowthInterval) scale_ *= kGrowth, growth_tracker_ = 0;
  } else {
    scale_ *= kBackoff;
    growth_tracker_ = 0;
  }
  return finite;
}

void GradScaler::restore(const nlohmann::json& s) {
  scale_ = s.at("scale");
  growth_tracker_ = s.at("growth_tracker");
}

}  // namespace cb
