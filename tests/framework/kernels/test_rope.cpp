// rope (framework/kernels/rope.h) against x·cos + rotate_half(x)·sin in fp64, on q as the model has it (a
// [B,L,H,Dh] projection seen as [B,H,L,Dh]) and on a contiguous x, and the inputs it leaves to LibTorch.
// Bound: two products and a sum, each rounded once in fp32 (or fused): 2 ulps of |x|·(|cos| + |sin|).
#include <catch2/catch.hpp>

#include <cmath>

#include "framework/kernels/linear.h"
#include "framework/kernels/rope.h"

using namespace cb::kernels;

TEST_CASE("rope: against the rotate_half formula in fp64") {
  torch::manual_seed(4);
  for (const int64_t Dh : {2, 6, 64})
    for (const int64_t L : {1, 3})
      for (const bool transposed : {true, false}) {
        const int64_t B = 2, H = 3;
        INFO("Dh " << Dh << " L " << L << " transposed " << transposed);
        const auto x = transposed ? torch::randn({B, L, H, Dh}).transpose(1, 2) : torch::randn({B, H, L, Dh});
        const auto angle = torch::rand({B, 1, L, Dh}) * 100;
        const auto cos = angle.cos(), sin = angle.sin();
        REQUIRE(rope_applies(x, cos, sin));
        const auto xd = x.to(torch::kDouble);
        const int64_t half = Dh / 2;
        const auto rot = torch::cat({-xd.narrow(-1, half, half), xd.narrow(-1, 0, half)}, -1);
        const auto ref = xd * cos.to(torch::kDouble) + rot * sin.to(torch::kDouble);
        const auto out = rope(x, cos, sin);
        REQUIRE(out.sizes() == x.sizes());
        const auto bound = std::ldexp(2.0, -24) * (xd.abs() + rot.abs()) * (cos.abs() + sin.abs()).to(torch::kDouble);
        CHECK(((out.to(torch::kDouble) - ref).abs() - bound).max().item<double>() <= 0);
      }
}

TEST_CASE("rope: which inputs it takes") {
  const auto x = torch::randn({1, 2, 1, 4}), c = torch::randn({1, 1, 1, 4});
  CHECK(rope_applies(x, c, c));
  CHECK_FALSE(rope_applies(x.clone().requires_grad_(), c, c));                           // training
  CHECK_FALSE(rope_applies(torch::randn({1, 2, 1, 5}), torch::randn({1, 1, 1, 5}), c));  // odd Dh
  CHECK_FALSE(rope_applies(torch::randn({1, 2, kSmallBatchRows + 1, 4}),                 // prefill
                           torch::randn({1, 1, kSmallBatchRows + 1, 4}), torch::randn({1, 1, kSmallBatchRows + 1, 4})));
  CHECK_FALSE(rope_applies(x.to(torch::kDouble), c, c));
  CHECK_THROWS_WITH(rope(x.to(torch::kDouble), c, c), Catch::Contains("rope: expected"));
}
