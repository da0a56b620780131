// decode_attention (framework/kernels/attention.h) against the matmul path in fp64, for every kernel
// family this CPU runs: grouped-query heads, additive masks broadcast over batch and heads (fully masked
// rows included), several new positions, head widths with SIMD tails (and, on AVX-512, multiples of 16:
// 16-row score blocks before a tail of rows, the weighted sum in one pass or two), and k/v read in place
// from a cache buffer with room to spare; and an fp16 cache.
//
// Bound: each output sums T products p·v after scores that sum Dh products; in fp32 any order of those
// stays within a few hundred ulps of |o| for these sizes. 1e-5 relative to the largest |v| is ~100 ulps
// and far below what a wrong head, position or mask element would give (~|v|).
#include <catch2/catch.hpp>

#include <cmath>

#include "framework/kernels/attention.h"
#include "tests/framework/kernels/kernels_here.h"

using namespace cb::kernels;
using cb::test::kernels_here;

namespace {

// The attention of models/llama.cpp with matmuls, in fp64. k, v [B,Hkv,T,Dh] repeated to H heads.
torch::Tensor reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& mask) {
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), Dh = q.size(3), group = H / k.size(1);
  auto kd = k.to(torch::kDouble).repeat_interleave(group, 1), vd = v.to(torch::kDouble).repeat_interleave(group, 1);
  auto s = torch::matmul(q.to(torch::kDouble), kd.transpose(2, 3)) / std::sqrt(double(Dh));
  if (mask.defined()) s = s + mask.to(torch::kDouble);
  return torch::matmul(torch::softmax(s, -1), vd).transpose(1, 2).reshape({B, L, H * Dh});
}

}  // namespace

TEST_CASE("decode attention: every kernel family against the matmul path in fp64") {
  torch::manual_seed(5);
  const float mn = std::numeric_limits<float>::lowest();
  for (const auto kernel : kernels_here())
    for (const int64_t Dh : {1, 7, 8, 16, 24, 64, 144})
      for (const auto& [H, Hkv] : {std::pair<int64_t, int64_t>{1, 1}, {4, 4}, {6, 2}})
        for (const int64_t L : {1, 3})
          for (const int64_t T : {int64_t{1}, L + 4, int64_t{37}})
            for (const int mask_kind : {0, 1, 2}) {
              const int64_t B = 2;
              INFO(linear_kernel_name(kernel) << " Dh " << Dh << " H " << H << " Hkv " << Hkv << " L " << L << " T "
                                              << T << " mask " << mask_kind);
              // q as the model has it: a [B,L,H,Dh] tensor seen as [B,H,L,Dh].
              auto q = torch::randn({B, L, H, Dh}).transpose(1, 2);
              // k, v: the first T positions of a cache buffer with room for T + 5.
              auto kbuf = torch::randn({B, Hkv, T + 5, Dh}), vbuf = torch::randn({B, Hkv, T + 5, Dh});
              auto k = kbuf.narrow(2, 0, T), v = vbuf.narrow(2, 0, T);
              torch::Tensor mask;
              if (mask_kind == 1) {  // causal over the new positions, shared by batch and heads: [1,1,L,T]
                auto i = torch::arange(L).view({L, 1}), j = torch::arange(T).view({1, T});
                mask = torch::zeros({L, T}).masked_fill(j > i + (T - L), mn).view({1, 1, L, T});
              } else if (mask_kind == 2) {  // left padding per batch row, [B,1,L,T]; row 1 fully masked
                mask = torch::zeros({B, 1, L, T});
                mask[0].narrow(-1, 0, T / 2).fill_(mn);
                mask[1].fill_(mn);
              }
              const auto out = decode_attention(q, k, v, mask, kernel);
              REQUIRE(out.sizes() == torch::IntArrayRef({B, L, H * Dh}));
              const double err = (out.to(torch::kDouble) - reference(q, k, v, mask)).abs().max().item<double>();
              CHECK(err <= 1e-5 * v.abs().max().item<double>());
            }
}

TEST_CASE("decode attention: an fp16 cache gives the fp32 result over the widened cache, bit for bit") {
  // The fp16 rows go through the same row kernel and axpy order as fp32 ones, each element widened
  // exactly: any difference is a wrong element, stride or conversion.
  torch::manual_seed(6);
  for (const auto kernel : kernels_here())
    for (const int64_t Dh : {7, 24, 64, 144})
      for (const int64_t T : {1, 9, 40}) {
        INFO(linear_kernel_name(kernel) << " Dh " << Dh << " T " << T);
        const int64_t B = 2, H = 6, Hkv = 2, L = 2;
        auto q = torch::randn({B, L, H, Dh}).transpose(1, 2);
        auto kbuf = torch::randn({B, Hkv, T + 3, Dh}).to(torch::kHalf);
        auto vbuf = torch::randn({B, Hkv, T + 3, Dh}).to(torch::kHalf);
        auto k = kbuf.narrow(2, 0, T), v = vbuf.narrow(2, 0, T);
        auto mask = torch::zeros({B, 1, L, T});
        mask[0].narrow(-1, 0, T / 2).fill_(std::numeric_limits<float>::lowest());
        const auto half = decode_attention(q, k, v, mask, kernel);
        CHECK(half.scalar_type() == torch::kFloat);
        CHECK(torch::equal(half, decode_attention(q, k.to(torch::kFloat), v.to(torch::kFloat), mask, kernel)));
      }
}

TEST_CASE("decode attention: which inputs it takes") {
  auto q = torch::randn({1, 4, 1, 8}), k = torch::randn({1, 2, 5, 8});
  CHECK(decode_attention_applies(q, k, k, {}));
  CHECK(decode_attention_applies(q, k, k, torch::zeros({1, 1, 1, 5})));
  CHECK(decode_attention_applies(q, k.to(torch::kHalf), k.to(torch::kHalf), {}));  // a 16-bit cache
  CHECK_FALSE(decode_attention_applies(q.to(torch::kDouble), k, k, {}));           // not float32
  CHECK_FALSE(decode_attention_applies(q.to(torch::kHalf), k.to(torch::kHalf), k.to(torch::kHalf), {}));
  CHECK_FALSE(decode_attention_applies(q, k.to(torch::kHalf), k, {}));  // k and v of two dtypes
  CHECK_FALSE(decode_attention_applies(q, k.to(torch::kBFloat16), k.to(torch::kBFloat16), {}));
  CHECK_FALSE(decode_attention_applies(q, k, k, torch::zeros({1, 1, 1, 5}, torch::kDouble)));
  CHECK_FALSE(decode_attention_applies(q.clone().requires_grad_(), k, k, {}));  // training
  CHECK_FALSE(decode_attention_applies(torch::randn({1, 3, 1, 8}), k, k, {}));  // 3 heads over 2
  CHECK_FALSE(decode_attention_applies(torch::randn({1, 4, kDecodeAttentionMaxPositions + 1, 8}), k, k, {}));
  CHECK_THROWS_WITH(decode_attention(torch::randn({1, 3, 1, 8}), k, k, {}), Catch::Contains("H a multiple of Hkv"));
}
