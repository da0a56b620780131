// The AVX-512 GEMM panel (framework/kernels/gemm.h) against fp64, over the shapes its loops split:
// rows of x around the 6-row micro-kernel (tails of 1-5), depths around the 16-wide packing and the
// 256-deep blocks (a masked last group, one block, several with a partial last), and panels of 1-64 rows
// (masked stores), written into a column slice of a wider y whose other columns must stay untouched.
// Bound: y is a sum of K fp32 products in some order, within γ(K)·Σ|x w| of the exact value (as
// test_linear.cpp); a wrong offset or a lost block misses by about one |x w| or more.
#include <catch2/catch.hpp>

#include <cmath>

#include "framework/kernels/gemm.h"
#include "framework/kernels/linear.h"

using namespace cb::kernels;

TEST_CASE("gemm_panel_avx512: every tail of rows, depth and panel width against fp64") {
#if !defined(__x86_64__)
  WARN("skipped: the AVX-512 GEMM exists on x86-64 only");
#else
  if (!linear_kernel_available(LinearKernel::avx512)) {
    WARN("skipped: this CPU has no AVX-512F");
    return;
  }
  torch::manual_seed(21);
  const double u = std::ldexp(1.0, -24);
  for (const int64_t M : {1, 5, 6, 7, 13, 130})
    for (const int64_t K : {1, 15, 16, 17, 255, 256, 257, 600})
      for (const int64_t n : {1, 15, 16, 17, 63, 64}) {
        INFO("M " << M << " K " << K << " n " << n);
        const auto x = torch::randn({M, K}), b = torch::randn({n, K});
        const int64_t ldy = n + 5, col0 = 2;  // y[:, 2:2+n] of a [M, n+5] output
        auto y = torch::full({M, ldy}, 7.0f);
        auto packed = torch::empty({K * kGemmPanelRows});
        gemm_panel_avx512(x.data_ptr<float>(), M, K, b.data_ptr<float>(), n, y.data_ptr<float>() + col0, ldy,
                          packed.data_ptr<float>());
        const auto xd = x.to(torch::kDouble), bd = b.to(torch::kDouble);
        const double g = (K + 2) * u / (1 - (K + 2) * u);
        const auto out = y.narrow(1, col0, n).to(torch::kDouble);
        const auto excess = (out - xd.matmul(bd.t())).abs() - g * xd.abs().matmul(bd.abs().t());
        CHECK(excess.max().item<double>() <= 0);
        CHECK(torch::all(y.narrow(1, 0, col0) == 7.0f).item<bool>());
        CHECK(torch::all(y.narrow(1, col0 + n, ldy - col0 - n) == 7.0f).item<bool>());
      }
#endif
}
