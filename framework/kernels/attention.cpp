#include "framework/kernels/attention.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "framework/error.h"
#include "framework/kernels/row_threads.h"

namespace cb::kernels {
namespace {

// The two vector operations of a head: Σ a·b over n (the fp32 row kernel of linear.h), and o += p·v.
struct HeadOps {
  DotKernel dot;
  void (*axpy)(float* o, float p, const float* v, int64_t n);
};

void axpy_scalar(float* o, float p, const float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) o[i] += p * v[i];
}

#if defined(__x86_64__)
[[gnu::target("avx2,fma")]] void axpy_avx2(float* o, float p, const float* v, int64_t n) {
  const __m256 pv = _mm256_set1_ps(p);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(o + i, _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + i), _mm256_loadu_ps(o + i)));
  for (; i < n; ++i) o[i] += p * v[i];
}
#endif

HeadOps head_ops(LinearKernel kernel) {
  const DotKernel dot = dot_kernel(kernel);  // fails when `kernel` cannot run here
#if defined(__x86_64__)
  if (kernel != LinearKernel::scalar) return {dot, axpy_avx2};
#endif
  return {dot, axpy_scalar};
}

// A strided float32 tensor's element pointer and strides, read without ATen's per-element checks.
struct View4 {
  const float* p;
  int64_t s0, s1, s2;  // strides of dims 0-2; dim 3 is contiguous (stride 1) or of size 1
  explicit View4(const torch::Tensor& t) : p(t.data_ptr<float>()), s0(t.stride(0)), s1(t.stride(1)), s2(t.stride(2)) {}
  const float* at(int64_t a, int64_t b, int64_t c) const { return p + a * s0 + b * s1 + c * s2; }
};

// Dim 3 with stride 1 (a copy otherwise; the model's q, k and v already are).
torch::Tensor rows_contiguous(const torch::Tensor& t) {
  return t.stride(3) == 1 || t.size(3) <= 1 ? t : t.contiguous();
}

}  // namespace

bool decode_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& mask) {
  auto cpu_float = [](const torch::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.dim() == 4 && !t.requires_grad();
  };
  if (!cpu_float(q) || !cpu_float(k) || !cpu_float(v)) return false;
  if (mask.defined() &&
      (!mask.device().is_cpu() || mask.scalar_type() != torch::kFloat || mask.dim() != 4 || mask.requires_grad()))
    return false;
  const int64_t H = q.size(1), Hkv = k.size(1);
  return q.size(2) <= kDecodeAttentionMaxPositions && Hkv > 0 && H % Hkv == 0 && k.sizes() == v.sizes() &&
         q.size(0) == k.size(0) && q.size(3) == k.size(3);
}

torch::Tensor decode_attention(const torch::Tensor& q_in, const torch::Tensor& k_in, const torch::Tensor& v_in,
                               const torch::Tensor& mask_in, LinearKernel kernel) {
  if (!decode_attention_applies(q_in, k_in, v_in, mask_in))
    fail(
        "decode_attention: expected float32 CPU q [B,H,L<={},Dh] and k, v [B,Hkv,T,Dh] with H a multiple of Hkv, "
        "without gradients; got q [{}], k [{}], v [{}]",
        kDecodeAttentionMaxPositions, fmt::join(q_in.sizes(), ","), fmt::join(k_in.sizes(), ","),
        fmt::join(v_in.sizes(), ","));
  const HeadOps ops = head_ops(kernel);
  const int64_t B = q_in.size(0), H = q_in.size(1), L = q_in.size(2), Dh = q_in.size(3);
  const int64_t Hkv = k_in.size(1), T = k_in.size(2), group = H / Hkv;
  const auto q = rows_contiguous(q_in), k = rows_contiguous(k_in), v = rows_contiguous(v_in);
  torch::Tensor mask;
  if (mask_in.defined()) mask = rows_contiguous(mask_in.expand({B, H, L, T}));  // broadcast dims get stride 0
  auto out = torch::empty({B, L, H * Dh}, q.options());
  if (out.numel() == 0) return out;
  if (T == 0) return out.zero_();  // no positions to attend to: the matmul path gives zeros too

  const View4 qv(q), kv(k), vv(v);
  const std::optional<View4> mv = mask.defined() ? std::optional<View4>(View4(mask)) : std::nullopt;
  float* o_base = out.data_ptr<float>();
  const float scale_div = static_cast<float>(std::sqrt(static_cast<double>(Dh)));
  // Heads per chunk: about 64 K multiply-adds (a few microseconds), so a short cache stays on one thread.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, 2 * L * T * Dh));
  parallel_rows(B * H, grain, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    if (static_cast<int64_t>(scores.size()) < T) scores.resize(static_cast<size_t>(T));
    float* s = scores.data();
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H, hk = h / group;
      for (int64_t l = 0; l < L; ++l) {
        const float* qr = qv.at(b, h, l);
        const float* m = mv ? mv->at(b, h, l) : nullptr;
        // s[t] = q·k_t / √Dh + mask[t]   (the division as the matmul path has it)
        float mx = -INFINITY;
        for (int64_t t = 0; t < T; ++t) {
          float st = ops.dot(kv.at(b, hk, t), qr, Dh) / scale_div;
          if (m) st += m[t];
          s[t] = st;
          mx = std::max(mx, st);
        }
        // p[t] = exp(s[t] − max) / Σ   (ATen's softmax: multiplied by the reciprocal of the sum)
        float sum = 0.f;
        for (int64_t t = 0; t < T; ++t) sum += (s[t] = std::exp(s[t] - mx));
        const float inv = 1.f / sum;
        // o = Σ_t p[t] v_t   [Dh], written to out[b, l, h·Dh : (h+1)·Dh]
        float* o = o_base + ((b * L + l) * H + h) * Dh;
        std::fill(o, o + Dh, 0.f);
        for (int64_t t = 0; t < T; ++t) ops.axpy(o, s[t] * inv, vv.at(b, hk, t), Dh);
      }
    }
  });
  return out;
}

}  // namespace cb::kernels
