// argmax (framework/kernels/argmax.h) against torch::argmax: the same index for every kernel family here,
// over widths around the SIMD loop's steps, ties, NaNs, infinities, signed zeros and several rows.
#include <catch2/catch.hpp>

#include <limits>

#include "framework/kernels/argmax.h"
#include "tests/framework/kernels/kernels_here.h"

using namespace cb::kernels;

namespace {

void check_same(const torch::Tensor& scores) {
  const auto want = scores.argmax(-1);
  for (const auto k : cb::test::kernels_here()) {
    INFO(linear_kernel_name(k) << " scores " << scores.sizes());
    REQUIRE(argmax_applies(scores));
    const auto got = cb::kernels::argmax(scores, k);
    REQUIRE(got.scalar_type() == torch::kLong);
    REQUIRE(got.sizes() == want.sizes());
    CHECK(torch::equal(got, want));
  }
}

}  // namespace

TEST_CASE("argmax: torch::argmax's index over widths, rows and ties") {
  torch::manual_seed(11);
  for (const int64_t V : {1, 7, 8, 9, 31, 32, 33, 100, 32000})
    for (const int64_t rows : {1, 3}) {
      check_same(torch::randn({rows, V}));
      check_same(torch::randint(0, 3, {rows, V}).to(torch::kFloat));  // many ties: the first wins
    }
  check_same(torch::randn({2, 3, 45}));   // leading dimensions kept
  check_same(torch::randn({77}));         // one row, no leading dimension
  check_same(torch::randn({4, 40}).t());  // not contiguous
}

TEST_CASE("argmax: NaN, infinities and signed zeros as torch::argmax") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (const int64_t V : {5, 40, 300}) {
    for (const int64_t at : {int64_t{0}, V / 2, V - 1}) {
      INFO("V " << V << " at " << at);
      auto x = torch::randn({1, V});
      x[0][at] = nan;
      check_same(x);  // a NaN is the maximum
      x[0][V - 1 - at] = nan;
      check_same(x);  // the first of two NaNs
      auto y = torch::full({1, V}, -inf);
      check_same(y);  // all -inf: index 0
      y[0][at] = inf;
      check_same(y);
      auto z = torch::full({1, V}, -1.f);
      z[0][at] = -0.f;
      z[0][V - 1] = 0.f;
      check_same(z);  // -0 and +0 tie: the first
    }
  }
}

TEST_CASE("argmax: which scores it takes") {
  CHECK_FALSE(argmax_applies(torch::randn({2, 5}, torch::kDouble)));
  CHECK_FALSE(argmax_applies(torch::randn({2, 0})));
  CHECK_FALSE(argmax_applies(torch::tensor(1.f)));
  CHECK_THROWS_WITH(cb::kernels::argmax(torch::randn({2, 5}).to(torch::kHalf)),
                    Catch::Contains("argmax: expected float32"));
}
