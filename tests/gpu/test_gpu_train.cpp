// A stage-1 and a stage-2 train step on CUDA as RunnerBase runs one with run.amp (runners/train/runner_base.cpp):
// the golden ChatBridge with the original's fp16 path (ViT and LLaMA weights in fp16), forward under fp16
// autocast, backward of the GradScaler-scaled loss, GradScaler::step until one runs (an overflow at the
// initial scale backs off, as in torch.cuda.amp). Then the overflow rule on an injected inf: the step is
// skipped (no parameter moves) and the scale halves. Skipped without CUDA.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "framework/autocast.h"
#include "runners/train/grad_scaler.h"
#include "runners/train/optim.h"
#include "tests/gpu/gpu_test.h"
#include "tests/models/chatbridge_fixture.h"

using namespace cb;
using namespace cb::test;

namespace {

std::vector<torch::Tensor> trainable_copies(ChatBridge& model) {
  std::vector<torch::Tensor> out;
  for (const auto& p : model->parameters())
    if (p.requires_grad()) out.push_back(p.detach().clone());
  return out;
}

// Largest |after - before| over the trainable parameters.
double largest_change(ChatBridge& model, const std::vector<torch::Tensor>& before) {
  double most = 0;
  size_t i = 0;
  for (const auto& p : model->parameters())
    if (p.requires_grad()) most = std::max(most, (p.detach() - before.at(i++)).abs().max().item<double>());
  return most;
}

double scale_of(const GradScaler& s) { return s.state().at("scale").get<double>(); }

void amp_train_steps(const std::string& name, torch::Device dev) {
  Fixture f(name);
  auto model = chatbridge_from_fixture(f, f.config());
  model->to(dev);
  apply_vit_precision(model->visual_encoder, "fp16", dev);
  model->llama_model->to(torch::kHalf);
  model->train();
  auto opt = make_adamw(*model, AdamWSettings{});
  GradScaler scaler;
  const double initial_scale = scale_of(scaler);
  auto batches = f.meta("batches");
  const auto first = batches.begin();
  const Batch batch = to_device(batch_from_fixture(f, first.key(), first.value().at("task")), dev);

  auto forward_backward = [&] {
    torch::Tensor loss;
    {
      AutocastGuard autocast(true, dev);
      loss = model->forward(batch).loss;
    }
    REQUIRE(loss.device().is_cuda());
    const double value = loss.item<double>();
    INFO(name << " loss " << value);
    REQUIRE(std::isfinite(value));
    scaler.scale(loss).backward();
    return value;
  };

  // The first steps: finite loss near the fp32 reference. At the initial scale 2^16 an fp16 gradient
  // inside the backward may overflow (the golden models' random weights give gradients above 1), so, as
  // torch.cuda.amp does, a step with an inf skips (no parameter moves) and halves the scale until a
  // step runs; then the parameters move and the scale stays.
  const double loss = forward_backward();
  check_close(torch::tensor({float(loss)}), f.get("output." + first.key() + ".loss"), tol::cuda_fp16_loss,
              "cuda amp " + name + " train loss");
  double scale = initial_scale;
  for (int skipped = 0;; ++skipped) {
    REQUIRE(skipped < 16);  // a scale of 2^0 would mean an inf the scale does not cause
    auto before = trainable_copies(model);
    const bool stepped = scaler.step(*opt);
    const double change = largest_change(model, before);
    zero_grad_keep(*opt);
    INFO(name << ": step " << skipped << " at scale " << scale);
    if (stepped) {
      CHECK(change > 0);
      CHECK(scale_of(scaler) == scale);
      break;
    }
    CHECK(change == 0);
    CHECK(scale_of(scaler) == scale / 2);
    scale /= 2;
    forward_backward();
  }
  WARN(name << ": the first step ran at scale " << scale << " (initial " << initial_scale << ")");

  // An overflow: one gradient element set to inf after backward, as an fp16 overflow would leave it.
  forward_backward();
  for (const auto& p : model->parameters())
    if (p.requires_grad() && p.grad().defined()) {
      p.grad().view({-1})[0].fill_(std::numeric_limits<float>::infinity());
      break;
    }
  auto before = trainable_copies(model);
  CHECK_FALSE(scaler.step(*opt));
  CHECK(largest_change(model, before) == 0);
  CHECK(scale_of(scaler) == scale / 2);
  CHECK(scaler.state().at("growth_tracker").get<int64_t>() == 0);
  zero_grad_keep(*opt);

  // The next step runs at the halved scale (a scale that already ran once leaves no inf).
  forward_backward();
  CHECK(scaler.step(*opt));
  CHECK(scale_of(scaler) == scale / 2);
}

}  // namespace

TEST_CASE("gpu train stage 1: fp16 autocast + GradScaler step, then an injected inf skips and backs off") {
  amp_train_steps("chatbridge_stage1", cuda_or_skip("gpu train stage 1"));
}

TEST_CASE("gpu train stage 2: fp16 autocast + GradScaler step, then an injected inf skips and backs off") {
  amp_train_steps("chatbridge_stage2", cuda_or_skip("gpu train stage 2"));
}
