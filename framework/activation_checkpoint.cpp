#include "framework/activation_checkpoint.h"

#include <ATen/Context.h>
#include <mutex>

namespace cb {
namespace {

at::Generator device_generator(const torch::Device& device) {
  return device.is_cpu() ? at::detail::getDefaultCPUGenerator() : at::globalContext().defaultGenerator(device);
}

torch::Tensor get_rng_state(const torch::Device& device) {
  auto gen = device_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_rng_state(const torch::Device& device, const torch::Tensor& state) {
  auto gen = device_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// The function and the RNG state at forward time, kept alive in the autograd context as a capsule.
struct Recompute : torch::CustomClassHolder {
  std::function<torch::Tensor(const std::vector<torch::Tensor>&)> fn;
  torch::Tensor rng_state;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  // Runs with grad mode off (autograd::Function does that), so no graph is kept for fn's insides.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, at::TensorList inputs,
                               c10::intrusive_ptr<Recompute> recompute) {
    recompute->rng_state = get_rng_state(inputs.front().device());
    ctx->save_for_backward(inputs.vec());
    auto y = recompute->fn(inputs.vec());
    ctx->saved_data["recompute"] = c10::IValue::make_capsule(std::move(recompute));
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto capsule = ctx->saved_data["recompute"].toCapsule();
    auto* recompute = static_cast<Recompute*>(capsule.get());
    auto inputs = ctx->get_saved_variables();
    for (auto& x : inputs)
      if (x.defined()) x = x.detach().requires_grad_(x.requires_grad());
    const auto device = inputs.front().device();

    auto rng_now = get_rng_state(device);
    set_rng_state(device, recompute->rng_state);
    torch::Tensor y;
    {
      torch::AutoGradMode enable(true);
      y = recompute->fn(inputs);
    }
    set_rng_state(device, rng_now);
    // Re-entrant backward: parameters used by fn accumulate their .grad here.
    torch::autograd::backward({y}, {grad_out[0]});
    torch::autograd::variable_list grads;
    for (const auto& x : inputs) grads.push_back(x.defined() ? x.grad() : torch::Tensor());
    grads.emplace_back();  // the capsule
    return grads;
  }
};

}  // namespace

torch::Tensor checkpoint(std::function<torch::Tensor(const std::vector<torch::Tensor>&)> fn,
                         const std::vector<torch::Tensor>& inputs) {
  auto recompute = c10::make_intrusive<Recompute>();
  recompute->fn = std::move(fn);
  return CheckpointFunction::apply(at::TensorList(inputs), std::move(recompute));
}

torch::Tensor checkpoint(std::function<torch::Tensor(const torch::Tensor&)> fn, const torch::Tensor& x) {
  return checkpoint([fn = std::move(fn)](const std::vector<torch::Tensor>& in) { return fn(in[0]); }, {x});
}

}  // namespace cb
