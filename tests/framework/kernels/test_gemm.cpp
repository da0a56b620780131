// The AVX-512 GEMM panel (framework/kernels/gemm.h) against fp64, over the shapes its loops split:
// rows of x around the 6-row micro-kernel (tails of 1-5), depths around the 16-wide packing and the
// 256-deep blocks (a masked last group, one block, several with a partial last), and panels of 1-64 rows
// (masked stores), written into a column slice of a wider y whose other columns must stay untouched;
// B stored in fp32, bf16 and fp16 (widened while packing); then the product with B packed by the caller,
// x a column slice, added to y or not.
// Bound: y is a sum of K fp32 products in some order, within γ(K)·Σ|x w| of the exact value (as
// test_linear.cpp); a wrong offset or a lost block misses by about one |x w| or more.
#include <catch2/catch.hpp>

#include <cmath>

#include "framework/kernels/gemm.h"
#include "framework/kernels/linear.h"

using namespace cb::kernels;

#if defined(__x86_64__)
namespace {
bool gemm_here() {
  if (linear_kernel_available(LinearKernel::avx512)) return true;
  WARN("skipped: this CPU has no AVX-512F");
  return false;
}
}  // namespace

TEST_CASE("gemm_panel_avx512: every tail of rows, depth and panel width against fp64") {
  if (!gemm_here()) return;
  torch::manual_seed(21);
  const double u = std::ldexp(1.0, -24);
  const std::pair<WeightFormat, torch::Dtype> stored[] = {
      {WeightFormat::f32, torch::kFloat}, {WeightFormat::bf16, torch::kBFloat16}, {WeightFormat::f16, torch::kHalf}};
  for (const auto& [rows, dtype] : stored)
    for (const int64_t M : {1, 5, 6, 7, 13, 130})
      for (const int64_t K : {1, 15, 16, 17, 255, 256, 257, 600})
        for (const int64_t n : {1, 15, 16, 17, 63, 64}) {
          INFO("B in " << dtype << " M " << M << " K " << K << " n " << n);
          const auto x = torch::randn({M, K}), b = torch::randn({n, K}).to(dtype);  // 16-bit B: exact in fp32
          const int64_t ldy = n + 5, col0 = 2;                                      // y[:, 2:2+n] of a [M, n+5] output
          auto y = torch::full({M, ldy}, 7.0f);
          auto packed = torch::empty({K * kGemmPanelRows});
          gemm_panel_avx512(x.data_ptr<float>(), M, K, b.data_ptr(), rows, n, y.data_ptr<float>() + col0, ldy,
                            packed.data_ptr<float>());
          const auto xd = x.to(torch::kDouble), bd = b.to(torch::kDouble);
          const double g = (K + 2) * u / (1 - (K + 2) * u);
          const auto out = y.narrow(1, col0, n).to(torch::kDouble);
          const auto excess = (out - xd.matmul(bd.t())).abs() - g * xd.abs().matmul(bd.abs().t());
          CHECK(excess.max().item<double>() <= 0);
          CHECK(torch::all(y.narrow(1, 0, col0) == 7.0f).item<bool>());
          CHECK(torch::all(y.narrow(1, col0 + n, ldy - col0 - n) == 7.0f).item<bool>());
        }
}

TEST_CASE("gemm_packed_avx512: x from a wider matrix, B packed by the caller, added to y") {
  if (!gemm_here()) return;
  torch::manual_seed(22);
  const double u = std::ldexp(1.0, -24);
  for (const int64_t M : {1, 7, 20})
    for (const int64_t K : {1, 256, 300})
      for (const int64_t n : {5, 64}) {
        INFO("M " << M << " K " << K << " n " << n);
        const int64_t ldx = K + 9, x0 = 4;  // x = xs[:, 4:4+K]
        const auto xs = torch::randn({M, ldx}), x = xs.narrow(1, x0, K);
        const auto bt = torch::randn({K, n});  // B's columns as rows
        // [K][64]: B's columns in lanes 0..n-1, NaN in the rest, whose products must not reach y.
        auto packed = torch::full({K, kGemmPanelRows}, std::nanf(""));
        packed.narrow(1, 0, n).copy_(bt);
        const auto y0 = torch::randn({M, n});
        for (const bool accumulate : {false, true}) {
          INFO("accumulate " << accumulate);
          auto y = y0.clone();
          gemm_packed_avx512(xs.data_ptr<float>() + x0, ldx, M, packed.data_ptr<float>(), K, n, y.data_ptr<float>(), n,
                             accumulate);
          const auto xd = x.to(torch::kDouble), bd = bt.to(torch::kDouble), y0d = y0.to(torch::kDouble);
          auto ref = xd.matmul(bd), magnitude = xd.abs().matmul(bd.abs());
          if (accumulate) {
            ref += y0d;
            magnitude += y0d.abs();
          }
          const double g = (K + 3) * u / (1 - (K + 3) * u);  // one more term: y's old value
          CHECK(((y.to(torch::kDouble) - ref).abs() - g * magnitude).max().item<double>() <= 0);
        }
      }
}
#else
TEST_CASE("gemm_panel_avx512, gemm_packed_avx512") { WARN("skipped: the AVX-512 GEMM exists on x86-64 only"); }
#endif
