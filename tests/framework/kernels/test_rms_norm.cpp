// rms_norm (framework/kernels/rms_norm.h) against LlamaRMSNorm's formula in fp64, for each weight dtype,
// odd widths and several rows, and the inputs it leaves to LibTorch's ops.
//
// Bound: the sum of D squares in fp32 is within ~D·u of the exact one relative to itself, and the rest
// adds a few roundings: 1e-5 relative (D <= 301) is ~100 ulps. A wrong row, element or scale misses by far
// more.
#include <catch2/catch.hpp>

#include "framework/kernels/rms_norm.h"

using namespace cb::kernels;

TEST_CASE("rms_norm: every weight dtype against the formula in fp64") {
  torch::manual_seed(3);
  const double eps = 1e-6;
  for (const auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf})
    for (const int64_t D : {1, 5, 64, 301})
      for (const auto& shape :
           {std::vector<int64_t>{D}, std::vector<int64_t>{2, 3, D}, std::vector<int64_t>{1, 16, D}}) {
        INFO(c10::toString(dtype) << " shape " << shape);
        const auto x = torch::randn(shape) * 3, w = torch::randn({D}).to(dtype);
        REQUIRE(rms_norm_applies(x, w));
        const auto xd = x.to(torch::kDouble);
        const auto ref = w.to(torch::kDouble) * xd * torch::rsqrt(xd.pow(2).mean(-1, true) + eps);
        const auto out = rms_norm(x, w, eps);
        REQUIRE(out.sizes() == x.sizes());
        REQUIRE(out.scalar_type() == torch::kFloat);
        CHECK(((out.to(torch::kDouble) - ref).abs() / ref.abs().max()).max().item<double>() <= 1e-5);
      }
}

TEST_CASE("rms_norm: which inputs it takes") {
  const auto x = torch::randn({1, 1, 8}), w = torch::ones({8});
  CHECK(rms_norm_applies(x, w));
  CHECK_FALSE(rms_norm_applies(x.clone().requires_grad_(), w));  // training: autograd's ops
  const auto trainable = w.clone().requires_grad_();
  CHECK_FALSE(rms_norm_applies(x, trainable));  // a norm being trained
  {
    torch::NoGradGuard generating;  // the same norm generating: no graph to record
    CHECK(rms_norm_applies(x, trainable));
  }
  CHECK_FALSE(rms_norm_applies(x.to(torch::kDouble), w));                       // not float32
  CHECK_FALSE(rms_norm_applies(torch::randn({1, kSmallBatchRows + 1, 8}), w));  // prefill: vectorised ops
  CHECK_FALSE(rms_norm_applies(torch::randn({1, 1, 7}), w));                    // width mismatch
  CHECK_THROWS_WITH(rms_norm(torch::randn({1, 1, 7}), w, 1e-6), Catch::Contains("rms_norm: expected"));
}
