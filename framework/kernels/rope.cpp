#include "framework/kernels/rope.h"

#include <array>

#include "framework/error.h"
#include "framework/kernels/linear.h"

namespace cb::kernels {
namespace {

// One head: x (elements xs apart) rotated into o [Dh]; o may be x when xs is 1 (each pair is read first).
inline void rope_head(const float* x, int64_t xs, int64_t half, const float* c, const float* s, float* o) {
  for (int64_t d = 0; d < half; ++d) {
    const float lo = x[d * xs], hi = x[(d + half) * xs];
    o[d] = lo * c[d] + -hi * s[d];
    o[d + half] = hi * c[d + half] + lo * s[d + half];
  }
}

}  // namespace

bool rope_applies(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  auto cpu_float = [](const torch::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.dim() == 4 && !t.requires_grad();
  };
  if (!cpu_float(x) || !cpu_float(cos) || !cpu_float(sin)) return false;
  const int64_t B = x.size(0), L = x.size(2), Dh = x.size(3);
  const std::array<int64_t, 4> table{B, 1, L, Dh};  // an IntArrayRef of a braced list would dangle
  return L <= kSmallBatchRows && Dh % 2 == 0 && cos.sizes() == torch::IntArrayRef(table) &&
         sin.sizes() == torch::IntArrayRef(table);
}

torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos_in, const torch::Tensor& sin_in) {
  if (!rope_applies(x, cos_in, sin_in))
    fail("rope: expected float32 CPU x [B,H,L<={},Dh] with Dh even and cos, sin [B,1,L,Dh], without gradients",
         kSmallBatchRows);
  const int64_t B = x.size(0), H = x.size(1), L = x.size(2), Dh = x.size(3), half = Dh / 2;
  const auto c = cos_in.contiguous(), s = sin_in.contiguous();
  auto out = torch::empty({B, L, H, Dh}, x.options());  // returned as [B,H,L,Dh]
  const float* xp = x.data_ptr<float>();
  const int64_t xs0 = x.stride(0), xs1 = x.stride(1), xs2 = x.stride(2), xs3 = x.stride(3);
  float* o = out.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l) {
      const float* cr = c.data_ptr<float>() + (b * L + l) * Dh;
      const float* sr = s.data_ptr<float>() + (b * L + l) * Dh;
      for (int64_t h = 0; h < H; ++h, o += Dh) rope_head(xp + b * xs0 + h * xs1 + l * xs2, xs3, half, cr, sr, o);
    }
  return out.transpose(1, 2);
}

void rope(const float* x, int64_t heads, int64_t Dh, const float* cos, const float* sin, float* out) {
  if (Dh % 2) fail("rope: head size {} is odd", Dh);
  for (int64_t h = 0; h < heads; ++h) rope_head(x + h * Dh, 1, Dh / 2, cos, sin, out + h * Dh);
}

}  // namespace cb::kernels
