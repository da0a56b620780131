#include "runners/train/grad_scaler.h"

#include <utility>
#include <vector>

namespace cb {

bool GradScaler::step(torch::optim::Optimizer& opt) {
  torch::NoGradGuard ng;
  // Gradients by device. CUDA ones are unscaled and checked by torch.cuda.amp's fused kernel, one
  // launch and one host sync per device; a per-tensor isfinite().item() would sync once per parameter.
  std::vector<std::pair<torch::Device, std::vector<torch::Tensor>>> by_device;
  for (auto& group : opt.param_groups())
    for (auto& p : group.params()) {
      const auto& g = p.grad();
      if (!g.defined()) continue;
      auto it = by_device.begin();
      while (it != by_device.end() && it->first != g.device()) ++it;
      if (it == by_device.end()) it = by_device.insert(it, {g.device(), {}});
      it->second.push_back(g);
    }
  bool finite = true;
  for (auto& [device, grads] : by_device) {
    if (device.is_cuda()) {
      auto f32 = torch::dtype(torch::kFloat).device(device);
      auto found_inf = torch::zeros({1}, f32);
      at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, torch::full({1}, 1.0 / scale_, f32));
      if (found_inf.item<float>() != 0) finite = false;
    } else {  // no CPU kernel for the fused op in LibTorch 1.13
      for (auto& g : grads) {
        g.mul_(1.0 / scale_);
        if (finite && !torch::isfinite(g).all().item<bool>()) finite = false;
      }
    }
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
