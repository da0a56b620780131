#include "framework/kernels/rms_norm.h"

#include <cmath>

#include "framework/error.h"

namespace cb::kernels {
namespace {

template <class W>
void norm_rows(const float* x, const W* w, int64_t rows, int64_t D, double eps, float* y) {
  for (int64_t r = 0; r < rows; ++r, x += D, y += D) {
    float s[4] = {0.f, 0.f, 0.f, 0.f};  // four sums: a shorter dependency chain
    int64_t d = 0;
    for (; d + 4 <= D; d += 4)
      for (int j = 0; j < 4; ++j) s[j] += x[d + j] * x[d + j];
    for (; d < D; ++d) s[0] += x[d] * x[d];
    const float variance = ((s[0] + s[1]) + (s[2] + s[3])) / static_cast<float>(D);
    const float inv = 1.f / std::sqrt(variance + static_cast<float>(eps));  // eps added in fp32, as x's dtype
    for (d = 0; d < D; ++d) y[d] = static_cast<float>(w[d]) * (x[d] * inv);
  }
}

}  // namespace

bool rms_norm_applies(const torch::Tensor& x, const torch::Tensor& weight) {
  const auto wt = weight.scalar_type();
  return x.device().is_cpu() && weight.device().is_cpu() && x.scalar_type() == torch::kFloat &&
         (wt == torch::kFloat || wt == torch::kBFloat16 || wt == torch::kHalf) &&
         (!torch::GradMode::is_enabled() || (!x.requires_grad() && !weight.requires_grad())) && x.dim() >= 1 &&
         weight.dim() == 1 && x.size(-1) == weight.size(0) &&
         x.numel() <= kSmallBatchRows * std::max<int64_t>(1, weight.size(0));
}

torch::Tensor rms_norm(const torch::Tensor& x_in, const torch::Tensor& weight_in, double eps) {
  if (!rms_norm_applies(x_in, weight_in))
    fail(
        "rms_norm: expected float32 CPU x [..., D] of at most {} rows and a CPU weight [D] of float32, bfloat16 "
        "or float16, without gradients",
        kSmallBatchRows);
  const auto x = x_in.contiguous();
  auto y = torch::empty(x.sizes(), x.options());
  const int64_t D = weight_in.size(0);
  rms_norm(x.data_ptr<float>(), D > 0 ? x.numel() / D : 0, weight_in.contiguous(), eps, y.data_ptr<float>());
  return y;
}

void rms_norm(const float* x, int64_t rows, const torch::Tensor& w, double eps, float* y) {
  if (!w.device().is_cpu() || w.dim() != 1 || !w.is_contiguous())
    fail("rms_norm: expected a contiguous CPU weight [D]");
  const int64_t D = w.size(0);
  switch (w.scalar_type()) {
    case torch::kFloat: return norm_rows(x, w.data_ptr<float>(), rows, D, eps, y);
    case torch::kBFloat16: return norm_rows(x, w.data_ptr<c10::BFloat16>(), rows, D, eps, y);
    case torch::kHalf: return norm_rows(x, w.data_ptr<c10::Half>(), rows, D, eps, y);
    default: fail("rms_norm: a {} weight (float32, bfloat16 or float16 expected)", c10::toString(w.scalar_type()));
  }
}

}  // namespace cb::kernels
