// GradScaler (runners/train/grad_scaler.h) on CPU tensors, torch.cuda.amp.GradScaler's rules: gradients
// are unscaled before the step, an inf/nan gradient skips the step and halves the scale, 2000 good steps
// in a row double it, and the state round-trips. The CUDA kernel path is tests/gpu/test_gpu_train.cpp.
#include <catch2/catch.hpp>

#include <limits>

#include "runners/train/grad_scaler.h"

using cb::GradScaler;

namespace {

double scale_of(const GradScaler& s) { return s.state().at("scale").get<double>(); }

// One parameter w = [1, 2] stepped by SGD(lr 1) on the gradient `grad`, handed in already scaled.
struct Setup {
  torch::Tensor w = torch::tensor({1.0f, 2.0f}).requires_grad_(true);
  torch::optim::SGD opt{{w}, torch::optim::SGDOptions(1.0)};
  bool step(GradScaler& scaler, const torch::Tensor& grad) {
    w.mutable_grad() = grad * scale_of(scaler);
    return scaler.step(opt);
  }
};

}  // namespace

TEST_CASE("GradScaler: the loss is scaled by 2^16, the gradients unscaled before the step") {
  GradScaler scaler;
  CHECK(scaler.scale(torch::tensor(3.0)).item<double>() == 3.0 * 65536);
  Setup s;
  REQUIRE(s.step(scaler, torch::tensor({0.5f, -0.25f})));
  CHECK(torch::equal(s.w.detach(), torch::tensor({0.5f, 2.25f})));  // w - 1.0 * unscaled grad
  CHECK(torch::equal(s.w.grad(), torch::tensor({0.5f, -0.25f})));
}

TEST_CASE("GradScaler: an inf or nan gradient skips the step and halves the scale") {
  GradScaler scaler;
  Setup s;
  for (float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    const double before = scale_of(scaler);
    CHECK_FALSE(s.step(scaler, torch::tensor({0.5f, bad})));
    CHECK(torch::equal(s.w.detach(), torch::tensor({1.0f, 2.0f})));  // untouched
    CHECK(scale_of(scaler) == before / 2);
    CHECK(scaler.state().at("growth_tracker").get<int64_t>() == 0);
  }
  CHECK(s.step(scaler, torch::tensor({0.0f, 0.0f})));  // the next finite step runs
}

TEST_CASE("GradScaler: 2000 good steps in a row double the scale, an overflow restarts the count") {
  GradScaler scaler;
  Setup s;
  const auto zero = torch::zeros({2});
  for (int i = 0; i < 1999; ++i) REQUIRE(s.step(scaler, zero));
  CHECK(scale_of(scaler) == 65536);
  REQUIRE(s.step(scaler, zero));
  CHECK(scale_of(scaler) == 131072);
  CHECK(scaler.state().at("growth_tracker").get<int64_t>() == 0);

  for (int i = 0; i < 1000; ++i) REQUIRE(s.step(scaler, zero));
  CHECK_FALSE(s.step(scaler, torch::tensor({std::numeric_limits<float>::infinity(), 0.0f})));
  for (int i = 0; i < 1999; ++i) REQUIRE(s.step(scaler, zero));
  CHECK(scale_of(scaler) == 65536);  // halved, and not yet doubled again
}

TEST_CASE("GradScaler: state and restore round-trip (training checkpoints)") {
  GradScaler a;
  Setup s;
  s.step(a, torch::tensor({std::numeric_limits<float>::infinity(), 0.0f}));
  for (int i = 0; i < 5; ++i) s.step(a, torch::zeros({2}));
  GradScaler b;
  b.restore(a.state());
  CHECK(b.state() == a.state());
  CHECK(b.state().at("scale").get<double>() == 32768);
  CHECK(b.state().at("growth_tracker").get<int64_t>() == 5);
}
