// Freezing as the original does it: requires_grad false on every parameter and eval mode. The original
// also replaces train() by a no-op (disabled_train); here the owner of a frozen part keeps it in eval
// mode when its own train() is called (e.g. by calling freeze_module again or overriding train()).
#pragma once
#include <torch/torch.h>

namespace cb {

inline void freeze_module(torch::nn::Module& m) {
  for (auto& p : m.parameters()) p.set_requires_grad(false);
  m.eval();
}

}  // namespace cb
