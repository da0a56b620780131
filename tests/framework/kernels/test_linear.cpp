// The frozen-linear kernels (framework/kernels/linear.h) against dequantise + matmul in fp64, for every
// format, every kernel family this CPU runs (scalar, AVX2, AVX-512), both paths (row kernels for
// M <= kSmallBatchRows rows of x; above, the GEMM of gemm.h on AVX-512 and dequantised tiles + BLAS
// otherwise; the input gradient through that GEMM on AVX-512 for every M), odd shapes and tails.
//
// Bound: the kernels sum n = cols (linear) or rows (input grad) products in some fp32 order (SIMD lanes,
// blocks scaled once, BLAS blocking); the weight values are exact in fp32 (d·q has at most 19 significant
// bits) and the fp64 reference is exact to ~1e-16. Any order of n fp32 products and sums is within
// γ·Σ|x_k w_k|, γ = (n + 2)·u / (1 − (n + 2)·u), u = 2⁻²⁴ (Higham, Accuracy and Stability, §3.1; the + 2
// covers the block scale's multiply and the final combine of partial sums). A wrong element or offset
// misses by about one |x_k w_k|, which is far outside that for these sizes.
#include <catch2/catch.hpp>

#include <cmath>

#include "framework/kernels/linear.h"
#include "tests/framework/kernels/kernels_here.h"

using namespace cb::kernels;
using cb::test::kernels_here;

namespace {

// max over outputs of |out − ref| − γ(n)·(|a|·|b|), which must be <= 0; a, b fp64 with ref = a·b.
double excess_error(const torch::Tensor& out, const torch::Tensor& a, const torch::Tensor& b, int64_t n) {
  const double u = std::ldexp(1.0, -24), g = (n + 2) * u / (1 - (n + 2) * u);
  const auto ref = torch::matmul(a, b);
  const auto bound = g * torch::matmul(a.abs(), b.abs());
  return ((out.to(torch::kDouble) - ref).abs() - bound).max().item<double>();
}

// Input widths: dense ones hit each family's 2-vector loop, its 1-vector step and the scalar tail (AVX2:
// 16 and 8 wide, AVX-512: 32 and 16); block formats
// need multiples of 32 (one block, an odd count for the two-accumulator loop, several).
std::vector<int64_t> cols_for(WeightFormat f) {
  if (is_block_format(f)) return {32, 96, 160};
  return {3, 8, 13, 24, 37, 53, 69};
}

PackedWeight random_weight(WeightFormat f, int64_t rows, int64_t cols) {
  return pack_weight(torch::randn({rows, cols}), f);
}

}  // namespace

TEST_CASE("linear: every format, kernel and path against dequantise + matmul in fp64") {
  const auto f =
      GENERATE(WeightFormat::f32, WeightFormat::bf16, WeightFormat::f16, WeightFormat::q8_0, WeightFormat::q4_0);
  torch::manual_seed(11);
  for (const auto kernel : kernels_here())
    for (const int64_t cols : cols_for(f))
      for (const int64_t rows : {1, 7, 37})
        for (const int64_t M : {1, 2, 3, 5, 17, 64}) {
          INFO(weight_format_name(f) << " " << linear_kernel_name(kernel) << " rows " << rows << " cols " << cols
                                     << " M " << M);
          const auto w = random_weight(f, rows, cols);
          const auto W = unpack_weight(w, torch::kDouble);  // [rows, cols], exact
          const auto x = torch::randn({M, cols});
          const auto y = linear(x, w, kernel);
          REQUIRE(y.sizes() == torch::IntArrayRef({M, rows}));
          CHECK(excess_error(y, x.to(torch::kDouble), W.t(), cols) <= 0);

          const auto dy = torch::randn({M, rows});
          const auto dx = linear_input_grad(dy, w, kernel);
          REQUIRE(dx.sizes() == torch::IntArrayRef({M, cols}));
          CHECK(excess_error(dx, dy.to(torch::kDouble), W, rows) <= 0);
        }
}

TEST_CASE("linear: block formats in row panels, every kernel and path, panels and the rows after them") {
  const auto f = GENERATE(WeightFormat::q8_0, WeightFormat::q4_0);
  torch::manual_seed(15);
  for (const auto kernel : kernels_here())
    for (const int64_t cols : cols_for(f))
      for (const int64_t rows : {7, 16, 37, 48})
        for (const int64_t M : {1, 2, 3, 5, 17, 64}) {
          INFO(weight_format_name(f) << " " << linear_kernel_name(kernel) << " rows " << rows << " cols " << cols
                                     << " M " << M);
          auto w = random_weight(f, rows, cols);
          const auto W = unpack_weight(w, torch::kDouble);
          storage_to_panels(w.data, w.format);
          w.layout = BlockLayout::panels;
          const auto x = torch::randn({M, cols});
          CHECK(excess_error(linear(x, w, kernel), x.to(torch::kDouble), W.t(), cols) <= 0);
          const auto dy = torch::randn({M, rows});
          CHECK(excess_error(linear_input_grad(dy, w, kernel), dy.to(torch::kDouble), W, rows) <= 0);
        }
  auto dense = random_weight(WeightFormat::bf16, 16, 32);
  dense.layout = BlockLayout::panels;
  CHECK_THROWS_WITH(linear(torch::randn({1, 32}), dense), Catch::Contains("block formats only"));
}

TEST_CASE("linear: q4_0 panels with x of a wide range inside a block, huge, infinite and NaN elements") {
  // The VNNI kernel (q4_0_vnni.h) sums x in integers at one scale per block of 32 and carries what an
  // element has below that scale in fp32. A block whose largest element meets a zero weight (q = 8) leaves
  // the bound to the small elements alone, so losing their remainders, or any of them, fails it.
  torch::manual_seed(19);
  const int64_t rows = 32, cols = 96, M = 3;
  auto dense = torch::randn({rows, cols});
  dense.select(1, 5).zero_();  // column 5: weight 0 in every row (q = 8 for any scale)
  auto w = pack_weight(dense, WeightFormat::q4_0);
  const auto W = unpack_weight(w, torch::kDouble);
  storage_to_panels(w.data, w.format);
  w.layout = BlockLayout::panels;
  auto x = torch::randn({M, cols});
  x.narrow(1, 0, 32).mul_(torch::logspace(-12, 0, 32).flip(0));  // block 0: 12 decades
  x[0][5] = 1e6f;                                                // row 0: a huge element on the zero weight
  x[0][31] = 0.3f;  // and in the block's last column, an element with bits far below the block's scale
  x[1][5] = 3e9f;   // row 1: one past 2^30 (the fp32 path)
  x[2].narrow(0, 32, 32).mul_(1e-38f);  // row 2, block 1: subnormal and tiny
  for (const auto kernel : kernels_here()) {
    INFO(linear_kernel_name(kernel));
    CHECK(excess_error(linear(x, w, kernel), x.to(torch::kDouble), W.t(), cols) <= 0);
    auto bad = x.clone();
    bad[0][40] = std::numeric_limits<float>::infinity();
    bad[1][70] = std::numeric_limits<float>::quiet_NaN();
    const auto y = linear(bad, w, kernel), ref = torch::matmul(bad, unpack_weight(w).t());
    CHECK(torch::equal(y.isnan(), ref.isnan()));
    CHECK(torch::equal(y.isinf(), ref.isinf()));
    CHECK(torch::equal(y[2], linear(x, w, kernel)[2]));  // a row without them is untouched
  }
}

TEST_CASE("linear_shared_input: weights of every format sharing x equal linear() of each, bit for bit") {
  torch::manual_seed(16);
  // 2048 wide: chunks of 1-8 rows (f32) to 3 panels (q4_0), so the threads' chunks cross from one weight
  // into the next; panels with rows after them, as a model holds them on AVX-512.
  const int64_t cols = 2048;
  std::vector<PackedWeight> ws;
  for (const auto& [f, rows] : std::vector<std::pair<WeightFormat, int64_t>>{
           {WeightFormat::f32, 37}, {WeightFormat::q8_0, 70}, {WeightFormat::q4_0, 100}, {WeightFormat::bf16, 20}}) {
    auto w = random_weight(f, rows, cols);
    if (preferred_layout(f) == BlockLayout::panels) {
      storage_to_panels(w.data, f);
      w.layout = BlockLayout::panels;
    }
    ws.push_back(w);
  }
  for (const auto kernel : kernels_here())
    for (const auto& xs : std::vector<std::vector<int64_t>>{{cols}, {1, cols}, {3, cols}, {2, 8, cols}, {17, cols}}) {
      INFO(linear_kernel_name(kernel) << " x rows " << torch::empty(xs, torch::kMeta).numel() / cols);
      const auto x = torch::randn(xs);
      const auto ys = linear_shared_input(x, ws, kernel);
      REQUIRE(ys.size() == ws.size());
      for (size_t i = 0; i < ws.size(); ++i) {
        INFO(weight_format_name(ws[i].format));
        CHECK(torch::equal(ys[i], linear(x, ws[i], kernel)));
      }
    }
  ws.push_back(random_weight(WeightFormat::f32, 4, 64));
  CHECK_THROWS_WITH(linear_shared_input(torch::randn({1, cols}), ws), Catch::Contains("input has 2048 features"));
}

TEST_CASE("linear: x of 1, 2 and 3 dimensions keeps its leading shape") {
  const auto f = GENERATE(WeightFormat::f32, WeightFormat::bf16, WeightFormat::q4_0);
  torch::manual_seed(12);
  const int64_t rows = 19, cols = 64;
  const auto w = random_weight(f, rows, cols);
  const auto W = unpack_weight(w, torch::kDouble);
  for (const auto kernel : kernels_here())
    for (const auto& lead : std::vector<std::vector<int64_t>>{{}, {3}, {3, 2}, {4, 16}}) {
      INFO(weight_format_name(f) << " " << linear_kernel_name(kernel) << " leading dims " << lead.size());
      auto xs = lead;
      xs.push_back(cols);
      const auto x = torch::randn(xs);
      const auto y = linear(x, w, kernel);
      auto ys = lead;
      ys.push_back(rows);
      REQUIRE(y.sizes() == torch::IntArrayRef(ys));
      CHECK(excess_error(y.reshape({-1, rows}), x.reshape({-1, cols}).to(torch::kDouble), W.t(), cols) <= 0);

      auto dys = lead;
      dys.push_back(rows);
      const auto dy = torch::randn(dys);
      const auto dx = linear_input_grad(dy, w, kernel);
      REQUIRE(dx.sizes() == torch::IntArrayRef(xs));
      CHECK(excess_error(dx.reshape({-1, cols}), dy.reshape({-1, rows}).to(torch::kDouble), W, rows) <= 0);
    }
}

TEST_CASE("linear: a weight of several dequantised tiles and GEMM panels, and their last partial ones") {
  const auto f = GENERATE(WeightFormat::f32, WeightFormat::bf16, WeightFormat::q8_0, WeightFormat::q4_0);
  torch::manual_seed(13);
  // 512 rows a tile: two whole tiles and 76 rows; 17 GEMM panels of 64 and 12 rows; the input gradient's
  // depth blocks of 256 rows: 4 and 76 rows (in panels: 4 panels and the 12 rows after them).
  const int64_t rows = 1100, cols = 2048, M = 17;
  auto w = random_weight(f, rows, cols);
  const auto W = unpack_weight(w, torch::kDouble);
  if (is_block_format(f)) {  // 68 panels and 12 rows
    storage_to_panels(w.data, f);
    w.layout = BlockLayout::panels;
  }
  for (const auto kernel : kernels_here()) {
    INFO(weight_format_name(f) << " " << linear_kernel_name(kernel));
    const auto x = torch::randn({M, cols});
    CHECK(excess_error(linear(x, w, kernel), x.to(torch::kDouble), W.t(), cols) <= 0);
    const auto dy = torch::randn({M, rows});
    CHECK(excess_error(linear_input_grad(dy, w, kernel), dy.to(torch::kDouble), W, rows) <= 0);
  }
}

TEST_CASE("linear: non-contiguous x, and the reference path for other dtypes") {
  torch::manual_seed(14);
  const auto w = random_weight(WeightFormat::q8_0, 9, 64);
  const auto W = unpack_weight(w, torch::kDouble);
  const auto x = torch::randn({64, 3}).t();  // [3, 64], column-major
  CHECK(excess_error(linear(x, w), x.to(torch::kDouble), W.t(), 64) <= 0);
  // bf16 activations are not the fast path's: dequantise and matmul in bf16.
  const auto xb = torch::randn({2, 64}).to(torch::kBFloat16);
  const auto yb = linear(xb, w);
  CHECK(yb.scalar_type() == torch::kBFloat16);
  CHECK(torch::allclose(yb.to(torch::kFloat),
                        torch::matmul(xb, unpack_weight(w, torch::kBFloat16).t()).to(torch::kFloat)));
}

TEST_CASE("linear: a width that does not match the weight names both") {
  const auto w = random_weight(WeightFormat::bf16, 4, 8);
  CHECK_THROWS_WITH(linear(torch::randn({2, 7}), w), "linear: input has 7 features, the weight expects 8");
  CHECK_THROWS_WITH(linear_input_grad(torch::randn({2, 5}), w),
                    "linear_input_grad: gradient has 5 features, the weight has 4 rows");
}
