// FlatAdamW against torch::optim::AdamW, step for step: parameters that get gradients late or never,
// different step counts side by side, in-place zero_grad, and state replaced from outside (as a
// checkpoint load does). Each kernel this machine runs is checked, and the kernels against each other.
#include <catch2/catch.hpp>

#include "framework/torch_compat.h"
#include "runners/train/optim.h"

using namespace cb;

namespace {

struct Toy : torch::nn::Module {
  torch::Tensor a, b, c, d;  // d is odd-sized: the vector loop's tail
  Toy() {
    a = register_parameter("a", torch::randn({7, 5}));
    b = register_parameter("b", torch::randn({33}));
    c = register_parameter("c", torch::randn({4, 4}));
    d = register_parameter("d", torch::randn({3}));
  }
  // Which parameters a "batch" uses changes from step to step.
  torch::Tensor loss(int step) {
    auto l = (a * a).sum() + torch::sin(b).sum();
    if (step >= 2) l = l + (c.exp() * 0.1).sum();  // c: first gradient at step 2
    if (step % 3 == 0) l = l + (d * d * d).sum();  // d: sometimes unused, then zero-grad as torch 1.13
    return l;
  }
};

std::shared_ptr<Toy> copy_of(const Toy& src) {
  auto t = std::make_shared<Toy>();
  torch::NoGradGuard ng;
  for (auto& [k, v] : t->named_parameters().pairs()) v.copy_(src.named_parameters()[k]);
  return t;
}

void check_same(const Toy& x, const Toy& y) {
  for (const auto& [k, v] : x.named_parameters().pairs()) {
    INFO(k);
    CHECK(torch::allclose(v, y.named_parameters()[k], 1e-6, 1e-7));
  }
}

const char* name(AdamWKernel k) { return k == AdamWKernel::avx2 ? "avx2" : "scalar"; }

}  // namespace

TEST_CASE("FlatAdamW: the same trajectory as torch::optim::AdamW") {
  const auto kernel = GENERATE(AdamWKernel::scalar, AdamWKernel::avx2);
  if (!adamw_kernel_available(kernel)) return;
  INFO("kernel " << name(kernel));
  torch::manual_seed(3);
  auto ref = std::make_shared<Toy>();
  auto flat = copy_of(*ref);
  auto opts = torch::optim::AdamWOptions(1e-2).weight_decay(0.05);
  torch::optim::AdamW ref_opt(ref->parameters(), opts);
  auto flat_opt = std::make_unique<FlatAdamW>(flat->parameters(), opts, kernel);

  for (int step = 0; step < 8; ++step) {
    const double lr = 1e-2 * (1 + step);  // a schedule sets the group's lr every step
    static_cast<torch::optim::AdamWOptions&>(ref_opt.param_groups()[0].options()).lr(lr);
    static_cast<torch::optim::AdamWOptions&>(flat_opt->param_groups()[0].options()).lr(lr);
    ref->loss(step).backward();
    flat->loss(step).backward();
    ref_opt.step();
    flat_opt->step();
    zero_grad_keep(ref_opt);
    zero_grad_keep(*flat_opt);
    INFO("step " << step);
    check_same(*ref, *flat);
    if (step == 4) {  // a checkpoint load replaces the moments with fresh tensors
      for (auto& [key, s] : flat_opt->state()) {
        auto& st = static_cast<torch::optim::AdamWParamState&>(*s);
        st.exp_avg(st.exp_avg().clone());
        st.exp_avg_sq(st.exp_avg_sq().clone());
      }
    }
  }
  // c started two steps late: its step count differs from a's.
  auto step_of = [&](torch::optim::Optimizer& o, const torch::Tensor& p) {
    return static_cast<torch::optim::AdamWParamState&>(*o.state().at(compat::optimizer_state_key(p))).step();
  };
  CHECK(step_of(*flat_opt, flat->a) == 8);
  CHECK(step_of(*flat_opt, flat->c) == 6);
  CHECK(step_of(ref_opt, ref->c) == 6);
}

TEST_CASE("FlatAdamW: parameters keep their shapes and names, gradients accumulate in place") {
  torch::manual_seed(4);
  auto m = std::make_shared<Toy>();
  auto opt = make_adamw(*m, {});
  REQUIRE(dynamic_cast<FlatAdamW*>(opt.get()));
  CHECK(m->a.sizes() == torch::IntArrayRef({7, 5}));
  m->loss(0).backward();
  opt->step();
  auto g = m->a.grad().data_ptr();
  zero_grad_keep(*opt);
  CHECK(m->a.grad().abs().sum().item<float>() == 0);
  m->loss(0).backward();
  CHECK(m->a.grad().data_ptr() == g);  // the slot of the flat buffer, not a new tensor
  CHECK(torch::allclose(m->a.grad(), 2 * m->a));
}

// The two kernels round every element the same (optim.cpp, adamw_element): whether an element falls in
// the AVX2 loop or its tail depends on how parameters group by step count and on the thread count.
// Sizes: tails of 1-7, and one parameter large enough for at::parallel_for to split it.
TEST_CASE("FlatAdamW: the scalar and AVX2 kernels agree bit for bit") {
  if (!adamw_kernel_available(AdamWKernel::avx2)) {
    WARN("no AVX2 and FMA on this machine: only the scalar kernel runs");
    return;
  }
  torch::manual_seed(5);
  std::vector<torch::Tensor> init;
  for (int64_t n : {1, 7, 8, 9, 15, 17, 40000, 3, 64, 5}) init.push_back(torch::randn({n}));
  auto run = [&](AdamWKernel kernel) {
    std::vector<torch::Tensor> ps;
    for (const auto& t : init) ps.push_back(t.clone().requires_grad_());
    FlatAdamW opt(ps, torch::optim::AdamWOptions(3e-3).weight_decay(0.05), kernel);
    torch::manual_seed(6);
    for (int step = 0; step < 6; ++step) {
      for (size_t i = 0; i < ps.size(); ++i) {
        if (i % 3 == 1 && step < 2) continue;  // a late first gradient: runs of different step counts
        ps[i].mutable_grad() = torch::randn_like(ps[i]) * std::pow(10.0, -2.0 * (i % 4));  // over 6 decades
      }
      opt.step();
    }
    std::vector<torch::Tensor> out = ps;
    for (const auto& p : ps) {
      const auto& s = static_cast<torch::optim::AdamWParamState&>(*opt.state().at(compat::optimizer_state_key(p)));
      out.push_back(s.exp_avg());
      out.push_back(s.exp_avg_sq());
    }
    return out;
  };
  const auto scalar = run(AdamWKernel::scalar), avx2 = run(AdamWKernel::avx2);
  for (size_t i = 0; i < scalar.size(); ++i) {
    INFO("tensor " << i << " (parameters, then each one's two moments)");
    CHECK(torch::equal(scalar[i], avx2[i]));
  }
}
