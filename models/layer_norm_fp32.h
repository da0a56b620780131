// LayerNorm that always normalises in fp32 and casts the result back to the input dtype
// (blip2.LayerNorm, used as ChatBridge's `ln_vision` and `ln_audio`). Parameters `weight`/`bias`.
#pragma once
#include <torch/torch.h>

namespace cb {

struct LayerNormFp32Impl : torch::nn::Module {
  LayerNormFp32Impl(int64_t dim, double eps = 1e-5);
  torch::Tensor forward(const torch::Tensor& x);  // [..., dim] -> same shape and dtype

  int64_t dim;
  double eps;
  torch::Tensor weight, bias;  // [dim], init 1 / 0
};
TORCH_MODULE(LayerNormFp32);

}  // namespace cb
