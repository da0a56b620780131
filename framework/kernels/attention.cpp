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
#include "framework/kernels/avx512_dense.h"
#include "framework/kernels/avx512_transpose.h"
#include "framework/kernels/row_threads.h"

namespace cb::kernels {
namespace {

// The vector operations of a head over the cache's rows (fp32 or fp16): Σ k·q (a row kernel of
// linear.h), and o += p·v. Where the AVX-512 family runs and Dh is a multiple of 16, a head goes through
// the wide pair instead: the scores of 16 rows at a time and the whole weighted sum with o in registers
// (per row, the one-row calls cost a call, a horizontal sum, and a load and store of o per 8 elements).
struct HeadOps {
  DotKernel dot;
  void (*axpy)(float* o, float p, const void* v, int64_t n);
  // s[j] = k_j · q for the 16 rows k_j = k + j·stride (elements), Dh % 16 == 0.
  void (*scores16)(const void* k, int64_t stride, const float* q, int64_t Dh, float* s) = nullptr;
  // s[t] = s[t] / div + m[t] (m may be null) over t < T; returns the largest s[t].
  float (*scale_mask_max)(float* s, const float* m, float div, int64_t T) = nullptr;
  // s[t] *= c over t < T.
  void (*scale)(float* s, float c, int64_t T) = nullptr;
  // o = Σ_{t<T} p[t] v_t over the rows v_t = v + t·stride, accumulated in t order as axpy would.
  void (*weighted_sum)(float* o, const float* p, const void* v, int64_t stride, int64_t T, int64_t Dh) = nullptr;
};

// The cache's rows (float or c10::Half elements) are dense weight rows of this format to the row kernels.
template <class T>
constexpr WeightFormat cache_format = std::is_same_v<T, float> ? WeightFormat::f32 : WeightFormat::f16;

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
  // An explicit FMA: whether a compiler contracts `o + p * v` may differ between the float and the
  // half variant (built with GCC 14, the two differed at odd head sizes), and the fp16 cache must
  // match the fp32 one.
  for (; i < n; ++i) o[i] = std::fma(p, static_cast<float>(v[i]), o[i]);
}

#define CB_AVX512 [[gnu::target("avx512f,avx2,fma,f16c")]]
// GCC 12's AVX-512 headers pass an undefined vector as the merge source of unmasked intrinsics and then
// warn that it is uninitialised (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// Row r's elements [c, c + 16) as floats.
template <class T>
CB_AVX512 inline __m512 load16(const T* r, int64_t c) {
  return dense16<cache_format<T>>(reinterpret_cast<const uint8_t*>(r), c);
}

template <class T>
CB_AVX512 void scores16_avx512(const void* k_in, int64_t stride, const float* q, int64_t Dh, float* s) {
  const T* k = static_cast<const T*>(k_in);
  __m512 acc[16];  // acc[j]: row j's products, 16 lanes
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (int64_t c = 0; c < Dh; c += 16) {
    const __m512 qc = _mm512_loadu_ps(q + c);
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_fmadd_ps(load16(k + j * stride, c), qc, acc[j]);
  }
  transpose16x16(acc);  // acc[i], lane j: lane i of row j's products
  for (int w = 8; w > 0; w /= 2)
    for (int i = 0; i < w; ++i) acc[i] = _mm512_add_ps(acc[i], acc[i + w]);
  _mm512_storeu_ps(s, acc[0]);
}

// The elementwise passes of the softmax, 16 lanes at a time (the same IEEE operations per element).
CB_AVX512 float scale_mask_max_avx512(float* s, const float* m, float div, int64_t T_) {
  const __m512 d = _mm512_set1_ps(div);
  __m512 mx = _mm512_set1_ps(-INFINITY);
  int64_t t = 0;
  for (; t + 16 <= T_; t += 16) {
    __m512 v = _mm512_div_ps(_mm512_loadu_ps(s + t), d);
    if (m) v = _mm512_add_ps(v, _mm512_loadu_ps(m + t));
    _mm512_storeu_ps(s + t, v);
    mx = _mm512_max_ps(mx, v);
  }
  float out = _mm512_reduce_max_ps(mx);
  for (; t < T_; ++t) {
    s[t] /= div;
    if (m) s[t] += m[t];
    out = std::max(out, s[t]);
  }
  return out;
}

CB_AVX512 void scale_avx512(float* s, float c, int64_t T_) {
  const __m512 cv = _mm512_set1_ps(c);
  int64_t t = 0;
  for (; t + 16 <= T_; t += 16) _mm512_storeu_ps(s + t, _mm512_mul_ps(_mm512_loadu_ps(s + t), cv));
  for (; t < T_; ++t) s[t] *= c;
}

// o[0, 16·NC) of the weighted sum.
template <class T, int NC>
CB_AVX512 void weighted_sum_part(float* o, const float* p, const T* v, int64_t stride, int64_t T_) {
  __m512 acc[NC];
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (int64_t t = 0; t < T_; ++t) {
    const __m512 pt = _mm512_set1_ps(p[t]);
    for (int c = 0; c < NC; ++c) acc[c] = _mm512_fmadd_ps(pt, load16(v + t * stride, 16 * c), acc[c]);
  }
  for (int c = 0; c < NC; ++c) _mm512_storeu_ps(o + 16 * c, acc[c]);
}

// In parts of up to 128 elements (8 accumulators), each a pass over the rows.
template <class T>
CB_AVX512 void weighted_sum_avx512(float* o, const float* p, const void* v_in, int64_t stride, int64_t T_, int64_t Dh) {
  const T* v = static_cast<const T*>(v_in);
  for (int64_t c = 0; c < Dh; c += 128) {
    float* oc = o + c;
    const T* vc = v + c;
    switch (std::min<int64_t>(8, (Dh - c) / 16)) {
      case 1: weighted_sum_part<T, 1>(oc, p, vc, stride, T_); break;
      case 2: weighted_sum_part<T, 2>(oc, p, vc, stride, T_); break;
      case 3: weighted_sum_part<T, 3>(oc, p, vc, stride, T_); break;
      case 4: weighted_sum_part<T, 4>(oc, p, vc, stride, T_); break;
      case 5: weighted_sum_part<T, 5>(oc, p, vc, stride, T_); break;
      case 6: weighted_sum_part<T, 6>(oc, p, vc, stride, T_); break;
      case 7: weighted_sum_part<T, 7>(oc, p, vc, stride, T_); break;
      default: weighted_sum_part<T, 8>(oc, p, vc, stride, T_); break;
    }
  }
}
#pragma GCC diagnostic pop
#undef CB_AVX512
#endif

template <class T>
HeadOps head_ops_for(LinearKernel kernel) {
  // fails when `kernel` cannot run here
  const DotKernel dot = dot_kernel(kernel, cache_format<T>);
#if defined(__x86_64__)
  if (uses_avx512(kernel))
    return {dot, axpy_avx2<T>, scores16_avx512<T>, scale_mask_max_avx512, scale_avx512, weighted_sum_avx512<T>};
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
  const bool wide = ops.scores16 && Dh % 16 == 0;
  const int64_t k_stride = kv.s2, v_stride = vv.s2;  // elements between consecutive positions
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
        int64_t t = 0;
        if (wide)
          for (; t + 16 <= T; t += 16) ops.scores16(kv.at(b, hk, t), k_stride, qr, Dh, s + t);
        for (; t < T; ++t) s[t] = ops.dot(kv.at(b, hk, t), qr, Dh);
        float mx = -INFINITY;
        if (wide) {
          mx = ops.scale_mask_max(s, m, scale_div, T);
        } else {
          for (t = 0; t < T; ++t) {
            s[t] /= scale_div;
            if (m) s[t] += m[t];
            mx = std::max(mx, s[t]);
          }
        }
        // p[t] = exp(s[t] − max) / Σ   (ATen's softmax: multiplied by the reciprocal of the sum)
        float sum = 0.f;
        for (t = 0; t < T; ++t) sum += (s[t] = std::exp(s[t] - mx));
        const float inv = 1.f / sum;
        // o = Σ_t p[t] v_t   [Dh], written to out[b, l, h·Dh : (h+1)·Dh]
        float* o = o_base + ((b * L + l) * H + h) * Dh;
        if (wide) {
          ops.scale(s, inv, T);
          ops.weighted_sum(o, s, vv.at(b, hk, 0), v_stride, T, Dh);
        } else {
          std::fill(o, o + Dh, 0.f);
          for (t = 0; t < T; ++t) ops.axpy(o, s[t] * inv, vv.at(b, hk, t), Dh);
        }
      }
    }
  });
  return out;
}

}  // namespace cb::kernels
