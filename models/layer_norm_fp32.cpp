#include "models/layer_norm_fp32.h"

namespace cb {

LayerNormFp32Impl::LayerNormFp32Impl(int64_t dim, double eps) : dim(dim), eps(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
  bias = register_parameter("bias", torch::zeros({dim}));
}

torch::Tensor LayerNormFp32Impl::forward(const torch::Tensor& x) {
  // The original's parameters are fp32; the input (fp16 under autocast) is promoted before normalising.
  auto y = torch::layer_norm(x.to(torch::kFloat), {dim}, weight.to(torch::kFloat), bias.to(torch::kFloat), eps);
  return y.to(x.scalar_type());
}

}  // namespace cb
