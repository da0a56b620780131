#include "runners/train/optim.h"

#include <cmath>
#include <unordered_set>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "framework/error.h"
#include "framework/kernels/cpu_features.h"
#include "framework/torch_compat.h"

namespace cb {
namespace {

// A tensor that shares `flat`'s storage at [offset, offset + numel) with `sizes`. Made with set_ rather
// than a view op, so autograd does not see a view (zero_grad's detach_ refuses views).
torch::Tensor alias(const torch::Tensor& flat, int64_t offset, at::IntArrayRef sizes) {
  torch::NoGradGuard no_grad;
  auto t = torch::empty({0}, flat.options());
  t.set_(flat.storage(), flat.storage_offset() + offset, sizes, c10::contiguous_strides(sizes));
  return t;
}

bool in_slot(const torch::Tensor& t, const torch::Tensor& slot) {
  return t.defined() && t.data_ptr() == slot.data_ptr() && t.is_contiguous();
}

struct AdamWStep {
  float decay, beta1, one_minus_beta1, beta2, one_minus_beta2, sqrt_bias_correction2, eps, neg_step_size;
};

// AdamW's ops of one step fused into one pass over fp32 CPU buffers, in torch's order: p *= decay;
// m = m*b1 + (1-b1)*g; v = v*b2 + (1-b2)*g*g; p += -step_size * m / (sqrt(v)/sqrt(bc2) + eps).
// The tensor-op version reads and writes ~25 arrays and allocates two temporaries; this reads 4 and
// writes 3. An element must round the same in the AVX2 loop, in its tail and in the scalar kernel
// (which elements are tails depends on how parameters group by step count, which differs after a
// resume, and on the thread count), or a resumed run drifts from an uninterrupted one. So each
// multiply that feeds an add is an explicit fused multiply-add in both kernels (p*decay included: it
// is not rounded on its own as torch's p.mul_ does), leaving no a*b + c for the compiler to contract
// or not (GCC's C++ default -ffp-contract=fast fuses one only where the target has FMA and both ops
// share a basic block).
inline void adamw_element(float& p, float g, float& m, float& v, const AdamWStep& c) {
  m = std::fma(c.one_minus_beta1, g, m * c.beta1);
  v = std::fma(c.one_minus_beta2 * g, g, v * c.beta2);
  p = std::fma(p, c.decay, c.neg_step_size * m / (std::sqrt(v) / c.sqrt_bias_correction2 + c.eps));
}

// Portable; where the target has no FMA instruction std::fma is libm's, exact but slower.
void adamw_update_scalar(float* p, const float* g, float* m, float* v, int64_t n, const AdamWStep& c) {
  for (int64_t i = 0; i < n; ++i) adamw_element(p[i], g[i], m[i], v[i], c);
}

#if defined(__x86_64__)
// Written with intrinsics: std::sqrt's errno keeps the compiler from vectorising the scalar loop.
[[gnu::target("avx2,fma")]] void adamw_update_avx2(float* p, const float* g, float* m, float* v, int64_t n,
                                                   const AdamWStep& c) {
  const __m256 decay = _mm256_set1_ps(c.decay), b1 = _mm256_set1_ps(c.beta1), a1 = _mm256_set1_ps(c.one_minus_beta1),
               b2 = _mm256_set1_ps(c.beta2), a2 = _mm256_set1_ps(c.one_minus_beta2),
               bc2 = _mm256_set1_ps(c.sqrt_bias_correction2), eps = _mm256_set1_ps(c.eps),
               step = _mm256_set1_ps(c.neg_step_size);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gi = _mm256_loadu_ps(g + i);
    const __m256 mi = _mm256_fmadd_ps(a1, gi, _mm256_mul_ps(_mm256_loadu_ps(m + i), b1));
    const __m256 vi = _mm256_fmadd_ps(_mm256_mul_ps(a2, gi), gi, _mm256_mul_ps(_mm256_loadu_ps(v + i), b2));
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2), eps);
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    _mm256_storeu_ps(p + i,
                     _mm256_fmadd_ps(_mm256_loadu_ps(p + i), decay, _mm256_div_ps(_mm256_mul_ps(step, mi), denom)));
  }
  adamw_update_scalar(p + i, g + i, m + i, v + i, n - i, c);
}
#endif

void adamw_update(AdamWKernel kernel, float* p, const float* g, float* m, float* v, int64_t n, const AdamWStep& c) {
#if defined(__x86_64__)
  if (kernel == AdamWKernel::avx2) return adamw_update_avx2(p, g, m, v, n, c);
#endif
  adamw_update_scalar(p, g, m, v, n, c);
}

}  // namespace

bool adamw_kernel_available(AdamWKernel kernel) {
#if defined(__x86_64__)
  if (kernel == AdamWKernel::avx2) return kernels::cpu_features().avx2 && kernels::cpu_features().fma;
#endif
  return kernel == AdamWKernel::scalar;
}

AdamWKernel default_adamw_kernel() {
  if (kernels::simd_forced_scalar()) return AdamWKernel::scalar;
  return adamw_kernel_available(AdamWKernel::avx2) ? AdamWKernel::avx2 : AdamWKernel::scalar;
}

FlatAdamW::FlatAdamW(std::vector<torch::Tensor> params, torch::optim::AdamWOptions options, AdamWKernel kernel)
    : torch::optim::AdamW(std::move(params), options), kernel_(kernel) {
  if (!adamw_kernel_available(kernel)) fail("FlatAdamW: the AVX2 kernel needs an x86-64 CPU with AVX2 and FMA");
  const auto& ps = param_groups().front().params();
  if (ps.empty() || options.amsgrad()) return;
  int64_t total = 0;
  for (const auto& p : ps) {
    if (p.options().dtype() != ps.front().options().dtype() || p.device() != ps.front().device()) return;
    offsets_.push_back(total);
    total += p.numel();
  }
  offsets_.push_back(total);
  const auto opts = ps.front().options().requires_grad(false);
  // Uninitialised: a slot is written when its tensor first arrives, so the pages of what is not in use
  // yet (gradients before the first backward, moments before the first step) are not resident.
  params_ = torch::empty({total}, opts);
  grads_ = torch::empty({total}, opts);
  exp_avg_ = torch::empty({total}, opts);
  exp_avg_sq_ = torch::empty({total}, opts);
  for (size_t i = 0; i < ps.size(); ++i) {
    const auto sizes = ps[i].sizes();
    slots_.push_back({alias(params_, offsets_[i], sizes), alias(grads_, offsets_[i], sizes),
                      alias(exp_avg_, offsets_[i], sizes), alias(exp_avg_sq_, offsets_[i], sizes)});
  }
  flat_ = true;
  place_in_slots();
}

void FlatAdamW::place_in_slots() {
  torch::NoGradGuard no_grad;
  auto& ps = param_groups().front().params();
  for (size_t i = 0; i < ps.size(); ++i) {
    auto& p = ps[i];
    if (p.device() != params_.device() || p.scalar_type() != params_.scalar_type())
      fail("FlatAdamW: a parameter moved to {} {} after the optimizer was built on {} {}", p.device().str(),
           c10::toString(p.scalar_type()), params_.device().str(), c10::toString(params_.scalar_type()));
    const auto& sl = slots_[i];
    if (!in_slot(p, sl.param)) {
      sl.param.copy_(p);
      p.set_data(sl.param);
    }
    auto& g = p.mutable_grad();
    if (g.defined() && !in_slot(g, sl.grad)) g = sl.grad.copy_(g);
    auto it = state().find(compat::optimizer_state_key(p));
    if (it == state().end()) continue;
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    if (!in_slot(s.exp_avg(), sl.exp_avg)) s.exp_avg(sl.exp_avg.copy_(s.exp_avg()));
    if (!in_slot(s.exp_avg_sq(), sl.exp_avg_sq)) s.exp_avg_sq(sl.exp_avg_sq.copy_(s.exp_avg_sq()));
  }
}

torch::Tensor FlatAdamW::step(LossClosure closure) {
  if (!flat_) return torch::optim::AdamW::step(std::move(closure));
  torch::Tensor loss;
  if (closure) {
    torch::AutoGradMode grad_on(true);
    loss = closure();
  }
  torch::NoGradGuard no_grad;
  auto& ps = param_groups().front().params();
  const auto& o = static_cast<const torch::optim::AdamWOptions&>(param_groups().front().options());
  const double lr = o.lr(), beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
  // A parameter's first gradient creates its state with step 0 and zero moments (as AdamW does);
  // parameters without a gradient are skipped (null).
  std::vector<torch::optim::AdamWParamState*> states(ps.size(), nullptr);
  for (size_t i = 0; i < ps.size(); ++i) {
    if (!ps[i].grad().defined()) continue;
    auto& s = state()[compat::optimizer_state_key(ps[i])];
    if (!s) {
      auto fresh = std::make_unique<torch::optim::AdamWParamState>();
      fresh->step(0);
      fresh->exp_avg(slots_[i].exp_avg.zero_());
      fresh->exp_avg_sq(slots_[i].exp_avg_sq.zero_());
      s = std::move(fresh);
    }
    states[i] = static_cast<torch::optim::AdamWParamState*>(s.get());
  }
  place_in_slots();
  // Runs [begin, end) of consecutive parameters with a gradient and the same step count.
  for (size_t begin = 0, end; begin < ps.size(); begin = end) {
    end = begin + 1;
    if (!states[begin]) continue;
    while (end < ps.size() && states[end] && states[end]->step() == states[begin]->step()) ++end;
    const int64_t step = states[begin]->step() + 1;
    for (size_t i = begin; i < end; ++i) states[i]->step(step);
    const int64_t off = offsets_[begin], n = offsets_[end] - off;
    const double bias_correction1 = 1 - std::pow(beta1, double(step)),
                 bias_correction2 = 1 - std::pow(beta2, double(step));
    const double decay = 1 - lr * o.weight_decay(), step_size = lr / bias_correction1;
    if (params_.is_cpu() && params_.scalar_type() == torch::kFloat) {
      const AdamWStep c{float(decay),   float(beta1),     float(1 - beta1),
                        float(beta2),   float(1 - beta2), float(std::sqrt(bias_correction2)),
                        float(o.eps()), float(-step_size)};
      float *p = params_.data_ptr<float>() + off, *m = exp_avg_.data_ptr<float>() + off;
      float *v = exp_avg_sq_.data_ptr<float>() + off, *g = grads_.data_ptr<float>() + off;
      at::parallel_for(0, n, 1 << 14,
                       [&](int64_t b, int64_t e) { adamw_update(kernel_, p + b, g + b, m + b, v + b, e - b, c); });
      continue;
    }
    auto p = params_.narrow(0, off, n), g = grads_.narrow(0, off, n);
    auto m = exp_avg_.narrow(0, off, n), v = exp_avg_sq_.narrow(0, off, n);
    if (o.weight_decay() != 0) p.mul_(decay);
    m.mul_(beta1).add_(g, 1 - beta1);
    v.mul_(beta2).addcmul_(g, g, 1 - beta2);
    auto denom = (v.sqrt() / std::sqrt(bias_correction2)).add_(o.eps());
    p.addcdiv_(m, denom, -step_size);
  }
  return loss;
}

bool FlatAdamW::zero_flat_grads() {
  if (!flat_) return false;
  torch::NoGradGuard no_grad;
  grads_.zero_();
  auto& ps = param_groups().front().params();
  for (size_t i = 0; i < ps.size(); ++i) {
    auto& g = ps[i].mutable_grad();
    if (g.defined() && !in_slot(g, slots_[i].grad)) {
      g.detach_();
      g.zero_();
    }
  }
  return true;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const torch::nn::Module& model, const AdamWSettings& s) {
  std::vector<torch::Tensor> params;
  std::unordered_set<const void*> seen;  // a shared module (BEATs' bias table) is listed once per owner
  for (const auto& p : model.parameters(true))
    if (p.requires_grad() && seen.insert(p.unsafeGetTensorImpl()).second) params.push_back(p);
  auto opts = torch::optim::AdamWOptions(s.lr).betas({s.beta1, s.beta2}).eps(s.eps).weight_decay(s.weight_decay);
  return std::make_unique<FlatAdamW>(params, opts);
}

void zero_grad_keep(torch::optim::Optimizer& opt) {
  if (auto* flat = dynamic_cast<FlatAdamW*>(&opt); flat && flat->zero_flat_grads()) return;
  for (auto& group : opt.param_groups())
    for (auto& p : group.params())
      if (p.mutable_grad().defined()) {
        p.mutable_grad().detach_();
        p.mutable_grad().zero_();
      }
}

}  // namespace cb
