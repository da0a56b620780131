// Autocast around the forward pass (`with autocast(enabled=run.amp)` of the original): bf16 on CPU
// (fp16 on CPU is slower and unsafe), fp16 on CUDA. The autocast weight cache is cleared on exit.
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
  bool enabled_, cuda_;
};

}  // namespace cb
