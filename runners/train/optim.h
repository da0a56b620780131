// The optimiser as the original runner builds it (RunnerBase.optimizer in runners/runner_base.py): torch.optim.AdamW
// over model.parameters() in ONE param group — weight decay applies to every trainable tensor, biases, norms and query
// tokens included — with betas (0.9, 0.999) and eps 1e-8.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <vector>

namespace cb {

struct AdamWSettings {
  double lr = 1e-4;            // run.init_lr (the schedule overwrites it every step)
  double weight_decay = 0.05;  // run.weight_decay
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

// The kernel of FlatAdamW's step on fp32 CPU buffers. Both round every element the same way, bit for
// bit (tests/runners/train/test_flat_adamw.cpp runs both); scalar is the portable fallback.
enum class AdamWKernel { scalar, avx2 };

// avx2 when built for x86-64 on a CPU with AVX2 and FMA, scalar otherwise or when the environment sets
// CHATBRIDGE_SIMD=scalar (kernels::simd_limit: also avx2 or avx512, which leave AdamW on avx2).
AdamWKernel default_adamw_kernel();

// Whether this build and CPU can run `kernel` (scalar: always).
bool adamw_kernel_available(AdamWKernel kernel);

// torch.optim.AdamW's update, element for element the same up to rounding (optim.cpp, adamw_element),
// run over a few long flat buffers instead of tensor by tensor: the parameters, their gradients and
// both moments live in four flat buffers (the parameters keep their own tensors and shapes, now backed
// by the buffer), and a step updates each run of consecutive parameters that have a gradient and the
// same step count at once: one fused pass on fp32 CPU buffers, AdamW's 9 tensor ops elsewhere. Tensor
// by tensor that is 9 ops and ~7 scalar conversions per parameter: ~10 % of a small train step. A
// parameter, gradient or moment that something else replaced (a checkpoint load, model.to(), a first
// gradient) is copied back into its slot at the next step. amsgrad and parameters of mixed
// dtype/device use AdamW::step.
class FlatAdamW : public torch::optim::AdamW {
 public:
  // Throws when `kernel` cannot run here (adamw_kernel_available).
  FlatAdamW(std::vector<torch::Tensor> params, torch::optim::AdamWOptions options,
            AdamWKernel kernel = default_adamw_kernel());
  torch::Tensor step(LossClosure closure = nullptr) override;
  // zero_grad_keep in one op over the flat gradient buffer. Returns false when not flat.
  bool zero_flat_grads();

 private:
  struct Slots {
    torch::Tensor param, grad, exp_avg, exp_avg_sq;  // aliases of the flat buffers, shaped as the parameter
  };
  // Points every parameter (and each defined gradient and moment) at its slot of the flat buffers.
  void place_in_slots();

  std::vector<int64_t> offsets_;  // of each parameter in the flat buffers (group 0 order), then the total
  std::vector<Slots> slots_;
  torch::Tensor params_, grads_, exp_avg_, exp_avg_sq_;
  bool flat_ = false;  // false: one dtype/device is not shared, fall back to AdamW::step
  AdamWKernel kernel_;
};

// Only parameters that require grad are handed over: frozen ones never receive a gradient, so the
// original's AdamW skips them anyway.
std::unique_ptr<torch::optim::AdamW> make_adamw(const torch::nn::Module& model, const AdamWSettings& s);

// optimizer.zero_grad() with PyTorch <= 1.13 semantics (set_to_none=False): gradients are zeroed in
// place, so a tensor that once had a gradient keeps being updated (moments and decay) on steps where it
// is unused — the original's numbers depend on it (e.g. audio_query_tokens on image batches).
void zero_grad_keep(torch::optim::Optimizer& opt);

}  // namespace cb
