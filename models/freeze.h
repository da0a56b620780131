// Freezing as the original does it: requires_grad false on every parameter and eval mode. The original
// also replaces train() by a no-op (disabled_train); here the owner of a frozen part keeps it in eval
// mode when its own train() is called (e.g. by calling freeze_module again or overriding train()).
#pragma once
#include <torch/torch.h>

#include <string>

namespace cb {

inline void freeze_module(torch::nn::Module& m) {
  for (auto& p : m.parameters()) p.set_requires_grad(false);
  m.eval();
}

// The storage precision of a frozen encoder (`model.vit_precision`, `model.beats_precision`, named by
// `key` in messages), as the original's convert_weights_to_fp16: "fp16" casts every Linear/Conv
// weight and bias to fp16 (other tensors, LayerNorms included, stay fp32) and the forward then needs
// CUDA autocast; the CPU has no fp16 kernels, so there "fp16" keeps fp32 (logged). "bf16" casts the
// same tensors to bf16 (run under CPU/CUDA bf16 autocast); "fp32" casts nothing.
void apply_frozen_precision(torch::nn::Module& model, const std::string& precision, const torch::Device& device,
                            const std::string& key);

}  // namespace cb
