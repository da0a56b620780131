// torch.cuda.amp.GradScaler for fp16 training on CUDA (RunnerBase.scaler in runners/runner_base.py): the loss is
// multiplied by `scale` before backward; before the optimiser step the gradients are divided back and checked, a step
// with an inf/nan gradient is skipped and the scale halved; after 2000 good steps it doubles.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>

namespace cb {

class GradScaler {
 public:
  torch::Tensor scale(const torch::Tensor& loss) const { return loss * scale_; }
  // Unscales the gradients of `opt`, steps it unless one is inf/nan, updates the scale. Returns
  // whether the step ran. Gradients must already be averaged over ranks (then every rank agrees).
  bool step(torch::optim::Optimizer& opt);

  nlohmann::json state() const { return {{"scale", scale_}, {"growth_tracker", growth_tracker_}}; }
  void restore(const nlohmann::json& s);

 private:
  double scale_ = 65536.0;  // 2^16
  int64_t growth_tracker_ = 0;
  static constexpr double kGrowth = 2.0, kBackoff = 0.5;
  static constexpr int64_t kGrowthInterval = 2000;
};

}  // namespace cb
