#include "framework/autocast.h"

#include "framework/torch_compat.h"

namespace cb {

AutocastGuard::AutocastGuard(bool enabled, torch::Device device) : enabled_(enabled), cuda_(device.is_cuda()) {
  if (!enabled_) return;
  was_enabled_ = cuda_ ? compat::cuda_autocast_enabled() : compat::cpu_autocast_enabled();
  if (cuda_) compat::set_cuda_autocast(true);
  else compat::set_cpu_autocast(true, at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  if (cuda_) compat::set_cuda_autocast(was_enabled_);
  else compat::set_cpu_autocast(was_enabled_, at::kBFloat16);
}

}  // namespace cb
