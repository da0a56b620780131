// The frozen LLaMA stored in bf16/fp16 (golden `llama` case and the tiny ChatBridge cases) and in
// q8_0/q4_0 (a random LLaMA at widths the block formats take) against fp32, within stated bounds.
//
// The 16-bit bound: with unit roundoff u (bf16 2^-9, fp16 2^-12) every stored weight carries a
// relative error <= u. To first order each rounded matrix on the path (the embedding, 7 projections
// per layer, lm_head: 7L + 2 of them) adds at most u times the logits' scale, so
// max|logits16 - logits32| <= (7L + 2) · u · max|logits32|. The loss is a mean cross entropy whose
// gradient in the logits has an L1 norm <= 2, so |loss16 - loss32| <= 2 · (7L + 2) · u · max|logits32|.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <iostream>
#include <tuple>

#include "framework/checkpoint/state_dict.h"
#include "framework/config.h"
#include "framework/json_file.h"
#include "models/frozen_linear.h"
#include "models/generation.h"
#include "models/llama.h"
#include "tests/models/chatbridge_fixture.h"
#include "tests/support/golden.h"
#include "tests/support/scratch_dir.h"

using namespace cb;
using namespace cb::test;
namespace fs = std::filesystem;

namespace {

double unit_roundoff(const std::string& precision) {
  return precision == "bf16" ? std::ldexp(1.0, -9) : std::ldexp(1.0, -12);
}

LlamaForCausalLM fixture_llama(const Fixture& f, const std::string& precision) {
  const auto c = LlamaConfig::from_json(f.config().at("llama_config"), "llama fixture config");
  LlamaForCausalLM model(c, LlamaStorage::from_precision(precision, /*init=*/false));
  load_state_dict_into_frozen(*model, strip_prefix(f.weights(), "llama_model."), /*strict=*/true, "llama fixture");
  model->eval();
  return model;
}

}  // namespace

TEST_CASE("llama precision: bf16 and fp16 storage give the fp32 logits within (7L+2)·u·max|logits|") {
  Fixture f("llama");
  LlamaInputs in;
  in.input_ids = f.get("input.input_ids");
  in.attention_mask = f.get("input.attention_mask");
  const auto sel = in.attention_mask == 1;
  torch::NoGradGuard no_grad;
  const auto ref = fixture_llama(f, "fp32")->forward(in).logits.index({sel});
  for (const std::string precision : {"bf16", "fp16"}) {
    auto model = fixture_llama(f, precision);
    REQUIRE(model->lm_head->weight.scalar_type() == (precision == "bf16" ? torch::kBFloat16 : torch::kHalf));
    const auto L = model->config().num_hidden_layers;
    auto out = model->forward(in).logits;
    CHECK(out.scalar_type() == torch::kFloat);
    check_close(out.index({sel}), ref, {double(7 * L + 2) * unit_roundoff(precision), 0},
                "golden llama logits, " + precision + " storage vs fp32");
  }
}

TEST_CASE("llama precision: the tiny ChatBridge's loss with a bf16 / fp16 LLaMA within 2·(7L+2)·u·max|logits|") {
  for (const std::string name : {"chatbridge_stage1", "chatbridge_stage2"}) {
    Fixture f(name);
    auto ref_model = chatbridge_from_fixture(f, f.config());
    ref_model->eval();
    torch::NoGradGuard no_grad;
    auto batches = f.meta("batches");
    for (const std::string precision : {"bf16", "fp16"}) {
      auto cfg = f.config();
      cfg["llama_precision"] = precision;
      auto model = chatbridge_from_fixture(f, cfg);
      model->eval();
      REQUIRE(model->llama_model->lm_head->weight.scalar_type() != torch::kFloat);
      const auto L = model->config().llama.num_hidden_layers;
      for (auto it = batches.begin(); it != batches.end(); ++it) {
        const auto batch = batch_from_fixture(f, it.key(), it.value().at("task"));
        ref_model->seed(0);
        model->seed(0);
        const auto ref = ref_model->forward(batch);
        const auto out = model->forward(batch);
        LlamaInputs in;
        in.inputs_embeds = ref.llama.inputs_embeds;
        in.attention_mask = ref.llama.attention_mask;
        const double scale = ref_model->llama_model->forward(in).logits.abs().max().item<double>();
        const double bound = 2 * double(7 * L + 2) * unit_roundoff(precision) * scale;
        check_close(out.loss.reshape({1}), ref.loss.reshape({1}), {0, bound},
                    name + " " + it.key() + " loss, " + precision + " LLaMA vs fp32");
      }
    }
  }
}

TEST_CASE("llama precision: q8_0 and q4_0 logits and greedy tokens stay near fp32") {
  // A random LLaMA at init-like scales (N(0, 0.02) as HF's _init_weights, lm_head sharpened) whose
  // widths are multiples of the 32-element blocks. Per weight, q8_0 rounds to 1/254 of its block's
  // largest magnitude and q4_0 to 1/16: for Gaussian blocks (max ≈ 2.2 σ) an rms relative error of
  // ≈ 0.5 % and ≈ 8 %; independent errors of the 7L+2 matrices add in quadrature (√16 = 4), so the
  // relative L2 error of the logits is ≈ 2 % and ≈ 30 %: bounded at 5 % and 50 %.
  LlamaConfig c;
  c.vocab_size = 128, c.hidden_size = 128, c.intermediate_size = 256, c.num_hidden_layers = 2;
  c.num_attention_heads = c.num_key_value_heads = 4;
  torch::manual_seed(11);
  LlamaForCausalLM fp32(c);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : fp32->parameters())
      if (p.dim() == 2) p.normal_(0, 0.02);
    fp32->lm_head->weight.mul_(50);
  }
  fp32->eval();
  const auto sd = module_state_dict(*fp32);
  const auto ids = torch::randint(3, c.vocab_size, {4, 12}, torch::kLong);
  torch::NoGradGuard no_grad;
  LlamaInputs in;
  in.input_ids = ids;
  const auto ref = fp32->forward(in).logits;
  GenerateOptions o;
  o.max_new_tokens = 8;
  o.min_new_tokens = o.max_new_tokens;  // every row decodes all 8 steps
  const auto ref_tokens = generate(fp32, ids.narrow(1, 0, 6), torch::ones({4, 6}, torch::kLong), o).sequences;
  for (const auto& [precision, rel_bound, top1_bound] : {std::tuple{"q8_0", 0.05, 0.9}, std::tuple{"q4_0", 0.5, 0.5}}) {
    LlamaForCausalLM q(c, LlamaStorage::from_precision(precision, /*init=*/false));
    load_state_dict_into_frozen(*q, sd, /*strict=*/true, "random LLaMA");
    q->eval();
    const auto out = q->forward(in).logits;
    const double rel = ((out - ref).norm() / ref.norm()).item<double>();
    const double top1 = out.argmax(-1).eq(ref.argmax(-1)).to(torch::kFloat).mean().item<double>();
    std::cout << "[precision] " << precision << " logits rel_l2=" << rel << " (bound " << rel_bound
              << "), top-1 agreement=" << top1 << " (bound " << top1_bound << ")\n";
    CHECK(rel <= rel_bound);
    CHECK(top1 >= top1_bound);
    const auto tokens = generate(q, ids.narrow(1, 0, 6), torch::ones({4, 6}, torch::kLong), o).sequences;
    REQUIRE(tokens.sizes() == ref_tokens.sizes());
    // Greedy decoding: the first generated token of every row agrees for q8_0; q4_0 for most rows.
    const auto first = tokens.select(1, 6).eq(ref_tokens.select(1, 6)).to(torch::kFloat).mean().item<double>();
    std::cout << "[precision] " << precision << " first greedy token agreement=" << first << "\n";
    CHECK(first >= top1_bound);
  }
}

TEST_CASE("llama precision: beside 16-bit and quantized weights the CPU KV cache is fp16, fp32 beside fp32") {
  // The cached forward reads keys and values rounded to fp16 (unit roundoff u = 2^-11 each); the full
  // forward reads them unrounded. To first order each of the 2L rounded tensors moves the attention
  // output by at most u of its scale, which the rest of the model carries to the logits as the weights'
  // rounding is carried in the bound above: max|cached - full| <= 2L · u · max|logits|.
  LlamaConfig c;
  c.vocab_size = 96, c.hidden_size = 64, c.intermediate_size = 128, c.num_hidden_layers = 2;
  c.num_attention_heads = c.num_key_value_heads = 4;
  torch::manual_seed(12);
  const auto sd = module_state_dict(*LlamaForCausalLM(c));
  const auto ids = torch::randint(3, c.vocab_size, {2, 10}, torch::kLong);
  torch::NoGradGuard no_grad;
  for (const std::string precision : {"fp32", "bf16", "q8_0", "q4_0"}) {
    INFO(precision);
    LlamaForCausalLM model(c, LlamaStorage::from_precision(precision, /*init=*/false));
    load_state_dict_into_frozen(*model, sd, /*strict=*/true, "random LLaMA");
    model->eval();
    LlamaInputs full;
    full.input_ids = ids;
    const auto ref = model->forward(full).logits;
    LlamaKVCache cache;
    LlamaInputs a, b;
    a.input_ids = ids.narrow(1, 0, 7);  // 7 positions: the decode attention over the cache
    a.cache = &cache;
    const auto first = model->forward(a).logits;
    b.input_ids = ids.narrow(1, 7, 3);
    b.cache = &cache;
    const auto cached = torch::cat({first, model->forward(b).logits}, 1);
    const auto expected = precision == "fp32" ? torch::kFloat : torch::kHalf;
    for (const auto& t : cache.keys) CHECK(t.scalar_type() == expected);
    for (const auto& t : cache.values) CHECK(t.scalar_type() == expected);
    const double err = (cached - ref).abs().max().item<double>(), scale = ref.abs().max().item<double>();
    const double bound = precision == "fp32" ? 1e-5 * scale : 2 * c.num_hidden_layers * std::ldexp(1.0, -11) * scale;
    std::cout << "[precision] " << precision << " cached vs full forward: max err " << err << " (bound " << bound
              << ")\n";
    CHECK(err <= bound);
  }
}

TEST_CASE("llama precision: auto takes a packed directory's format on the CPU, fp32 from a dense one") {
  const auto hf = cb::test::golden_hf_dirs().front();
  auto config = cb::read_json_file(hf / "config.json", "golden config");
  const auto dense = cb::test::fresh_dir("precision_dense"), packed = cb::test::fresh_dir("precision_packed");
  std::ofstream(dense / "config.json") << config.dump();
  config["quantization_config"] = {{"quant_method", "chatbridge"}, {"weight_format", "q4_0"}};
  std::ofstream(packed / "config.json") << config.dump();
  const auto yaml = dense / "run.yaml";  // the model keys come as options, the rest at their defaults
  std::ofstream(yaml) << "model:\n  arch: chatbridge\n  model_type: pretrain_vicuna\nrun:\n  task: tri_pretrain\n";
  auto precision = [&](const fs::path& dir, const std::vector<std::string>& more = {}) {
    std::vector<std::string> options{"model.llama_model=" + dir.string()};
    options.insert(options.end(), more.begin(), more.end());
    return ChatBridgeConfig::from_config(resolve_config(yaml, options).sub("model")).llama_precision;
  };
  if (!torch::cuda::is_available()) {  // with CUDA, auto is fp16 for every directory
    CHECK(precision(packed) == "q4_0");
    CHECK(precision(dense) == "fp32");
  }
  // An explicit precision, or low_resource's 8 bits, still wins over the directory.
  CHECK(precision(packed, {"model.llama_precision=bf16"}) == "bf16");
  CHECK(precision(packed, {"model.low_resource=True"}) == "q8_0");
}
