// FrozenLinear: the LLaMA's projections in fp32, bf16, fp16, q8_0 and q4_0 storage. fp32 matches
// torch::nn::Linear (same fresh weights, same outputs and input gradients); other formats match the
// dequantised weight's product; W never gets a gradient; quantized layers refuse training.
#include <catch2/catch.hpp>

#include "framework/error.h"
#include "framework/kernels/linear.h"
#include "framework/kernels/weight_format.h"
#include "models/frozen_linear.h"
#include "models/llama.h"
#include "tests/support/golden.h"

using cb::FrozenLinear;
using cb::FrozenLinearOptions;
using cb::kernels::WeightFormat;

namespace {

FrozenLinear frozen(int64_t in, int64_t out, WeightFormat f, bool init = true, bool map_packed = false) {
  FrozenLinearOptions o(in, out);
  o.format = f;
  o.init = init;
  o.map_packed = map_packed;
  return FrozenLinear(o);
}

}  // namespace

TEST_CASE("FrozenLinear fp32: the fresh weights, outputs and input gradients of torch::nn::Linear") {
  torch::manual_seed(3);
  torch::nn::Linear ref(torch::nn::LinearOptions(64, 48).bias(false));
  torch::manual_seed(3);
  auto lin = frozen(64, 48, WeightFormat::f32);
  REQUIRE(torch::equal(lin->weight, ref->weight));  // the same RNG draws
  lin->weight.set_requires_grad(false);
  ref->weight.set_requires_grad(false);
  for (int64_t rows : {1, 5, 40}) {  // the row kernels (<= 16 rows) and the GEMM path
    INFO(rows);
    auto x = torch::randn({rows, 64}).requires_grad_(true);
    auto x_ref = x.detach().clone().requires_grad_(true);
    auto y = lin(x), y_ref = ref(x_ref);
    cb::test::check_close(y, y_ref, {1e-5, 1e-6}, "fp32 FrozenLinear vs nn::Linear");
    auto dy = torch::randn_like(y);
    y.backward(dy);
    y_ref.backward(dy);
    cb::test::check_close(x.grad(), x_ref.grad(), {1e-5, 1e-6}, "fp32 FrozenLinear input gradient");
    CHECK_FALSE(lin->weight.grad().defined());
  }
}

TEST_CASE("FrozenLinear 16-bit and quantized: the dequantised weight's product, fp32 out on the CPU") {
  torch::manual_seed(5);
  const auto w = torch::randn({40, 96}) * 0.1;
  const auto x = torch::randn({3, 7, 96});
  for (auto f : {WeightFormat::bf16, WeightFormat::f16, WeightFormat::q8_0, WeightFormat::q4_0}) {
    INFO(cb::kernels::weight_format_name(f));
    auto lin = frozen(96, 40, f, /*init=*/false);
    lin->set_weight(w, "test weight");
    CHECK(lin->format() == f);
    const auto dense = cb::kernels::unpack_weight(cb::kernels::pack_weight(w, f));
    torch::NoGradGuard no_grad;
    auto y = lin(x);
    CHECK(y.scalar_type() == torch::kFloat);
    cb::test::check_close(y, torch::matmul(x, dense.t()), {1e-5, 1e-5}, "FrozenLinear vs dequantised product");
  }
}

TEST_CASE("FrozenLinear: gradients reach x through 16-bit weights, quantized layers refuse to train") {
  torch::manual_seed(6);
  auto lin = frozen(64, 32, WeightFormat::bf16);
  lin->weight.set_requires_grad(false);
  auto x = torch::randn({4, 64}).requires_grad_(true);
  lin(x).sum().backward();
  const auto dense = lin->weight.to(torch::kFloat);
  cb::test::check_close(x.grad(), dense.sum(0).expand({4, 64}), {1e-5, 1e-5}, "bf16 input gradient");
  CHECK_FALSE(lin->weight.grad().defined());

  auto q = frozen(64, 32, WeightFormat::q8_0);
  CHECK_FALSE(q->weight.requires_grad());
  CHECK_THROWS_WITH(q(torch::randn({4, 64}).requires_grad_(true)),
                    Catch::Contains("training through a q8_0 LLaMA") && Catch::Contains("model.llama_precision"));
  torch::NoGradGuard no_grad;
  CHECK(q(torch::randn({4, 64})).sizes() == torch::IntArrayRef({4, 32}));
}

TEST_CASE("FrozenLinear: packed storage copied in or used as stored, re-packed across formats, kept under a cast") {
  torch::manual_seed(7);
  const auto w = torch::randn({8, 64});
  const auto q8 = cb::kernels::pack_weight(w, WeightFormat::q8_0).data;
  const auto q8_before = q8.clone();
  auto copied = frozen(64, 8, WeightFormat::q8_0, /*init=*/false);
  copied->set_weight(q8, "q8 tensor");
  CHECK(copied->weight.data_ptr() != q8.data_ptr());  // the default: the layer's own memory
  CHECK(torch::equal(copied->weight, q8));

  auto lin = frozen(64, 8, WeightFormat::q8_0, /*init=*/false, /*map_packed=*/true);
  lin->set_weight(q8, "q8 tensor");
  CHECK(lin->weight.data_ptr() == q8.data_ptr());  // no copy
  lin->to(torch::kHalf);
  CHECK(lin->weight.scalar_type() == torch::kByte);
  CHECK(torch::equal(lin->weight, q8));
  // A later dense weight lands in new storage, never in the tensor it was given (a read-only mapping).
  lin->set_weight(w * 2, "dense tensor");
  CHECK(lin->weight.data_ptr() != q8.data_ptr());
  CHECK(torch::equal(q8, q8_before));
  CHECK(torch::equal(lin->weight, cb::kernels::pack_weight(w * 2, WeightFormat::q8_0).data));

  auto q4 = frozen(64, 8, WeightFormat::q4_0, /*init=*/false);
  q4->set_weight(q8, "q8 tensor");  // q8_0 file, q4_0 model: dequantised and packed again
  CHECK(torch::equal(
      q4->weight,
      cb::kernels::pack_weight(cb::kernels::unpack_weight({WeightFormat::q8_0, 8, 64, q8}), WeightFormat::q4_0).data));
  CHECK_THROWS_WITH(q4->set_weight(torch::zeros({8, 10}, torch::kByte), "bad.weight"),
                    Catch::Contains("bad.weight") && Catch::Contains("neither a q8_0 nor a q4_0"));
  CHECK_THROWS_WITH(q4->set_weight(torch::zeros({8, 32}), "short.weight"),
                    Catch::Contains("short.weight") && Catch::Contains("8x64"));
}

TEST_CASE("FrozenLinear q8_0 and q4_0: its own storage in the CPU's preferred layout, the file's rows on request") {
  const auto f = GENERATE(WeightFormat::q8_0, WeightFormat::q4_0);
  INFO(cb::kernels::weight_format_name(f));
  torch::manual_seed(8);
  const auto w = torch::randn({40, 64});  // two panels of 16 and 8 rows
  const auto rows = cb::kernels::pack_weight(w, f).data;
  const auto preferred = cb::kernels::preferred_layout(f);
  auto fresh = frozen(64, 40, f);
  CHECK(fresh->packed().layout == preferred);
  for (const bool map : {false, true}) {
    INFO("map_packed " << map);
    auto lin = frozen(64, 40, f, /*init=*/false, map);
    lin->set_weight(rows, "packed tensor");
    // A mapped file's bytes are used as they lie (rows); the layer's own copy takes the preferred layout.
    CHECK(lin->packed().layout == (map ? cb::kernels::BlockLayout::rows : preferred));
    CHECK(torch::equal(lin->packed_rows(), rows));
    torch::NoGradGuard no_grad;
    const auto x = torch::randn({3, 64});
    const auto ref =
        torch::matmul(x.to(torch::kDouble), cb::kernels::unpack_weight({f, 40, 64, rows}, torch::kDouble).t());
    CHECK(torch::allclose(lin(x).to(torch::kDouble), ref, 1e-5, 1e-4));
  }
}

TEST_CASE("load_state_dict_into_frozen: an fp32 LLaMA state dict into a q4_0 LLaMA, names unchanged") {
  cb::LlamaConfig c;
  c.vocab_size = 50, c.hidden_size = 64, c.intermediate_size = 96, c.num_hidden_layers = 2;
  c.num_attention_heads = c.num_key_value_heads = 4;
  cb::LlamaForCausalLM fp32(c);
  auto q4 = cb::LlamaForCausalLM(c, cb::LlamaStorage::from_precision("q4_0", /*init=*/false));
  auto sd = cb::module_state_dict(*fp32);
  auto own = cb::module_state_dict(*q4);
  REQUIRE(own.size() == sd.size());
  for (const auto& kv : sd) CHECK(own.contains(kv.key()));
  auto report = cb::load_state_dict_into_frozen(*q4, sd, /*strict=*/true, "fp32 LLaMA");
  CHECK(report.loaded == sd.size());
  CHECK(q4->lm_head->weight.scalar_type() == torch::kByte);
  CHECK(q4->model->embed_tokens->weight.scalar_type() == torch::kHalf);
  CHECK(torch::equal(q4->lm_head->packed_rows(),
                     cb::kernels::pack_weight(fp32->lm_head->weight, WeightFormat::q4_0).data));
  CHECK_THROWS_WITH(cb::LlamaStorage::from_precision("int8"), Catch::Contains("model.llama_precision"));
}
