// Autocast around a forward pass: bf16 on CPU (fp16 on CPU is slower and unsafe), fp16 on CUDA. Used by
// the runner for `run.amp` (`with autocast(enabled=amp)` of the original) and by the model for the
// original's `maybe_autocast()` (always on while the model is on CUDA). Guards nest: each restores the
// state it found, and the autocast weight cache is cleared when the outermost one exits, as
// torch.autocast's __exit__ does.
#pragma once
#include <torch/torch.h>

namespace cb {

class AutocastGuard {
 public:
  AutocastGuard(bool enabled, torch::Device device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_, cuda_, was_enabled_ = false;
};

}  // namespace cb
