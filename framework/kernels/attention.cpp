#include "framework/kernels/attention.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "framework/error.h"
#include "framework/kernels/row_threads.h"

namespace cb::kernels {
namespace {

// The two vector operations of a head over the cache's rows (fp32 or fp16): Σ k·q (a row kernel of
// linear.h), and o += p·v.
struct HeadOps {
  DotKernel dot;
  void (*axpy)(float* o, float p, const void* v, int64_t n);
};

template <class T>
void axpy_scalar(float* o, float p, const void* v_in, int64_t n) {
  const T* v = static_cast<const T*>(v_in);
  for (int64_t i = 0; i < n; ++i) o[i] += p * static_cast<float>(v[i]);
}

#if defined(__x86_64__)
// v's elements [i, i + 8) as floats.
template <class T>
[[gnu::target("avx2,fma,f16c")]] inline __m256 load8(const T* v, int64_t i) {
  if constexpr (std::is_same_v<T, float>) return _mm256_loadu_ps(v + i);
  else return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
}

template <class T>
[[gnu::target("avx2,fma,f16c")]] void axpy_avx2(float* o, float p, const void* v_in, int64_t n) {
  const T* v = static_cast<const T*>(v_in);
  const __m256 pv = _mm256_set1_ps(p);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(o + i, _mm256_fmadd_ps(pv, load8(v, i), _mm256_loadu_ps(o + i)));
  for (; i < n; ++i) o[i] += p * static_cast<float>(v[i]);
}
#endif

template <class T>
HeadOps head_ops_for(LinearKernel kernel) {
  // fails when `kernel` cannot run here
  const DotKernel dot = dot_kernel(kernel, std::is_same_v<T, float> ? WeightFormat::f32 : WeightFormat::f16);
#if defined(__x86_64__)
  if (kernel != LinearKernel::scalar) return {dot, axpy_avx2<T>};
#endif
  return {dot, axpy_scalar<T>};
}

HeadOps head_ops(LinearKernel kernel, torch::Dtype kv_dtype) {
  return kv_dtype == torch::kHalf ? head_ops_for<c10::Half>(kernel) : head_ops_for<float>(kernel);
}

// A strided tensor's element pointer and strides (in elements), read without ATen's per-element checks.
struct View4 {
  const uint8_t* p;
  int64_t s0, s1, s2;  // strides of dims 0-2; dim 3 is contiguous (stride 1) or of size 1
  int64_t elem;
  explicit View4(const torch::Tensor& t)
      : p(static_cast<const uint8_t*>(t.data_ptr())),
        s0(t.stride(0)),
        s1(t.stride(1)),
        s2(t.stride(2)),
        elem(static_cast<int64_t>(t.element_size())) {}
  const void* at(int64_t a, int64_t b, int64_t c) const { return p + (a * s0 + b * s1 + c * s2) * elem; }
  const float* f32(int64_t a, int64_t b, int64_t c) const { return static_cast<const float*>(at(a, b, c)); }
};

// Dim 3 with stride 1 (a copy otherwise; the model's q, k and v already are).
torch::Tensor rows_contiguous(const torch::Tensor& t) {
  return t.stride(3) == 1 || t.size(3) <= 1 ? t : t.contiguous();
}

}  // namespace

bool decode_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& mask) {
  auto cpu_4d = [](const torch::Tensor& t) { return t.device().is_cpu() && t.dim() == 4 && !t.requires_grad(); };
  if (!cpu_4d(q) || !cpu_4d(k) || !cpu_4d(v) || q.scalar_type() != torch::kFloat) return false;
  const auto kv = k.scalar_type();
  if ((kv != torch::kFloat && kv != torch::kHalf) || v.scalar_type() != kv) return false;
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
        "decode_attention: expected float32 CPU q [B,H,L<={},Dh] and float32 or float16 k, v [B,Hkv,T,Dh] with H a "
        "multiple of Hkv, without gradients; got q [{}] {}, k [{}] {}, v [{}] {}",
        kDecodeAttentionMaxPositions, fmt::join(q_in.sizes(), ","), c10::toString(q_in.scalar_type()),
        fmt::join(k_in.sizes(), ","), c10::toString(k_in.scalar_type()), fmt::join(v_in.sizes(), ","),
        c10::toString(v_in.scalar_type()));
  const HeadOps ops = head_ops(kernel, k_in.scalar_type());
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
        const float* qr = qv.f32(b, h, l);
        const float* m = mv ? mv->f32(b, h, l) : nullptr;
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
