#include "runners/train/autocast.h"

#include "framework/torch_compat.h"

namespace cb {

AutocastGuard::AutocastGuard(bool enabled, torch::Device device) : enabled_(enabled), cuda_(device.is_cuda()) {
  if (!enabled_) return;
  if (cuda_) compat::set_cuda_autocast(true);
  else compat::set_cpu_autocast(true, at::kBFloat16);
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  if (cuda_) compat::set_cuda_autocast(false);
  else compat::set_cpu_autocast(false, at::kBFloat16);
  at::autocast::clear_cache();
}

}  // namespace cb
