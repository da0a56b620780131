// Unit tests of the LLaMA config parser, dtype handling, grouped-query attention, the HF-4.28
// logits processors/warpers (hand-computed values) and generate's options, on small random models.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <limits>

#include "framework/checkpoint/state_dict.h"
#include "framework/error.h"
#include "models/generation.h"
#include "models/llama.h"
#include "tests/support/golden.h"

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

nlohmann::json tiny_config_json() {
  return {{"vocab_size", 40},         {"hidden_size", 16},    {"intermediate_size", 24},      {"num_hidden_layers", 2},
          {"num_attention_heads", 4}, {"rms_norm_eps", 1e-6}, {"max_position_embeddings", 64}};
}

// A random model whose logits spread like a trained one's (lm_head scaled up).
cb::LlamaForCausalLM random_model(const nlohmann::json& config = tiny_config_json(), uint64_t seed = 7) {
  torch::manual_seed(seed);
  cb::LlamaForCausalLM model(cb::LlamaConfig::from_json(config));
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.normal_(0, 0.3);
  model->lm_head->weight.mul_(5);
  model->eval();
  return model;
}

torch::Tensor row(std::vector<float> v) { return torch::tensor(v).unsqueeze(0); }

}  // namespace

TEST_CASE("LlamaConfig: HF config.json keys, 4.28 defaults and refusals") {
  auto c = cb::LlamaConfig::from_json(tiny_config_json());
  CHECK(c.num_key_value_heads == 4);  // absent -> num_attention_heads
  CHECK(c.head_dim() == 4);
  CHECK(c.rope_theta == 10000.0);
  CHECK(c.pad_token_id == 0);
  CHECK(c.bos_token_id == 1);
  CHECK(c.eos_token_id == 2);

  auto j = tiny_config_json();
  j["num_key_value_heads"] = 2;
  j["rope_theta"] = 500000.0;
  j["pad_token_id"] = nullptr;
  j["rope_scaling"] = nullptr;
  c = cb::LlamaConfig::from_json(j);
  CHECK(c.num_key_value_heads == 2);
  CHECK(c.rope_theta == 500000.0);
  CHECK_FALSE(c.pad_token_id.has_value());

  auto bad = [](const char* key, nlohmann::json value) {
    auto j = tiny_config_json();
    if (value.is_null()) j.erase(key);
    else j[key] = value;
    return cb::LlamaConfig::from_json(j, "cfg.json");
  };
  CHECK_THROWS_AS(bad("hidden_size", nullptr), cb::Error);  // missing required key
  CHECK_THROWS_WITH(bad("hidden_size", nullptr), Catch::Contains("cfg.json") && Catch::Contains("hidden_size"));
  CHECK_THROWS_AS(bad("hidden_size", "big"), cb::Error);
  CHECK_THROWS_AS(bad("hidden_act", "gelu"), cb::Error);
  CHECK_THROWS_AS(bad("tie_word_embeddings", true), cb::Error);
  CHECK_THROWS_AS(bad("rope_scaling", {{"type", "linear"}, {"factor", 2.0}}), cb::Error);
  CHECK_THROWS_AS(bad("num_attention_heads", 3), cb::Error);  // 16 not divisible by 3
  CHECK_THROWS_AS(bad("num_key_value_heads", 3), cb::Error);  // 4 heads not divisible by 3
}

TEST_CASE("LlamaConfig: reads the Vicuna fixture directories' config.json") {
  const auto dirs = cb::test::golden_hf_dirs();
  REQUIRE(!dirs.empty());
  for (const auto& dir : dirs) {
    auto path = dir / "config.json";
    auto j = nlohmann::json::parse(std::ifstream(path));
    auto c = cb::LlamaConfig::from_file(path);
    CHECK(c.hidden_size == j.at("hidden_size").get<int64_t>());
    CHECK(c.num_hidden_layers == j.at("num_hidden_layers").get<int64_t>());
    CHECK(c.vocab_size == j.at("vocab_size").get<int64_t>());
    CHECK(c.num_key_value_heads == j.value("num_key_value_heads", j.at("num_attention_heads").get<int64_t>()));
  }
}

TEST_CASE("LLaMA state dict carries the HF names, inv_freq stays fp32 under a dtype cast") {
  auto model = random_model();
  auto sd = cb::module_state_dict(*model);
  for (const char* key : {"model.embed_tokens.weight", "model.layers.1.self_attn.q_proj.weight",
                          "model.layers.1.self_attn.rotary_emb.inv_freq", "model.layers.0.mlp.down_proj.weight",
                          "model.layers.0.post_attention_layernorm.weight", "model.norm.weight", "lm_head.weight"})
    CHECK(sd.contains(key));
  CHECK(sd.size() == 2 + 1 + 2 * 10);
  model->to(torch::kBFloat16);
  CHECK(model->model->norm->weight.scalar_type() == torch::kBFloat16);
  CHECK(cb::module_state_dict(*model)["model.layers.0.self_attn.rotary_emb.inv_freq"].scalar_type() == torch::kFloat);
}

TEST_CASE("LLaMA with bf16 weights computes in fp32 on the CPU and stays close to fp32") {
  auto model = random_model();
  auto ids = torch::randint(3, 40, {2, 9}, torch::kLong);
  auto mask = torch::ones({2, 9}, torch::kLong);
  mask[1].narrow(0, 0, 3).fill_(0);
  auto labels = ids.clone();
  cb::LlamaInputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.labels = labels;
  torch::NoGradGuard no_grad;
  auto ref = model->forward(in);
  model->to(torch::kBFloat16);
  auto out = model->forward(in);
  CHECK(model->lm_head->weight.scalar_type() == torch::kBFloat16);
  CHECK(out.logits.scalar_type() == torch::kFloat);  // no LibTorch bf16 GEMM on the CPU (docs/precision.md)
  CHECK(out.loss.scalar_type() == torch::kFloat);
  auto sel = mask == 1;
  // bf16 keeps 8 bits of mantissa; two layers of random weights stay within 2 %.
  cb::test::check_close(out.logits.index({sel}), ref.logits.index({sel}), {2e-2, 0}, "bf16 vs fp32 logits");
  cb::test::check_close(out.loss, ref.loss, {5e-3, 0}, "bf16 vs fp32 loss");
}

TEST_CASE("LLaMA grouped-query attention equals multi-head attention with repeated k/v heads") {
  auto j = tiny_config_json();
  j["num_key_value_heads"] = 2;
  auto gqa = random_model(j);
  auto mha = random_model();
  cb::StateDict shared;  // everything but k/v, whose shapes differ
  for (const auto& kv : cb::module_state_dict(*gqa))
    if (kv.key().find("k_proj") == std::string::npos && kv.key().find("v_proj") == std::string::npos)
      shared.insert(kv.key(), kv.value());
  cb::load_state_dict(*mha, shared, /*strict=*/false);
  const auto H = 4, Hkv = 2, Dh = 4, D = 16;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < gqa->model->layers->size(); ++i) {
    auto src = gqa->model->layers[i]->as<cb::LlamaDecoderLayer>()->self_attn;
    auto dst = mha->model->layers[i]->as<cb::LlamaDecoderLayer>()->self_attn;
    // query head h reads kv head h / (H/Hkv), as HF's repeat_kv
    dst->k_proj->weight.copy_(
        src->k_proj->weight.view({Hkv, Dh, D}).repeat_interleave(H / Hkv, 0).reshape({H * Dh, D}));
    dst->v_proj->weight.copy_(
        src->v_proj->weight.view({Hkv, Dh, D}).repeat_interleave(H / Hkv, 0).reshape({H * Dh, D}));
  }
  cb::LlamaInputs in;
  in.input_ids = torch::randint(3, 40, {2, 7}, torch::kLong);
  auto a = gqa->forward(in).logits;
  auto b = mha->forward(in).logits;
  cb::test::check_close(a, b, {1e-5, 1e-5}, "GQA vs repeated-head MHA");
}

TEST_CASE("LLaMA loss_only: the full forward's loss and gradients from L-1 positions and the supervised rows") {
  auto model = random_model();
  const int64_t B = 3, L = 9, D = 16;
  torch::manual_seed(11);
  auto embeds = torch::randn({B, L, D});
  auto mask = torch::ones({B, L}, torch::kLong);
  mask.index_put_({2, torch::indexing::Slice(0, 3)}, 0);  // a left-padded row
  auto labels = torch::randint(3, 40, {B, L}, torch::kLong);
  labels.index_put_({torch::indexing::Slice(), torch::indexing::Slice(0, 4)}, -100);  // an unsupervised prompt
  labels.index_put_({1, 6}, -100);
  auto run = [&](bool loss_only) {
    auto x = embeds.clone().requires_grad_(true);
    cb::LlamaInputs in;
    in.inputs_embeds = x;
    in.attention_mask = mask;
    in.labels = labels;
    in.loss_only = loss_only;
    auto out = model->forward(in);
    CHECK(out.logits.defined() != loss_only);
    out.loss.backward();
    return std::pair{out.loss.detach(), x.grad()};
  };
  auto [full_loss, full_grad] = run(false);
  auto [loss, grad] = run(true);
  cb::test::check_close(loss, full_loss, {1e-6, 1e-6}, "loss_only loss");
  cb::test::check_close(grad, full_grad, {1e-6, 1e-6}, "loss_only input gradients");
  CHECK(grad.select(1, L - 1).abs().max().item<float>() == 0.0f);  // the last position predicts nothing
}

TEST_CASE("repetition penalty divides positive and multiplies negative logits of seen ids") {
  auto scores = row({2.0f, -1.0f, 0.5f, 3.0f});
  auto ids = torch::tensor({0, 1, 1}, torch::kLong).unsqueeze(0);
  auto out = cb::apply_repetition_penalty(scores, ids, 2.0);
  CHECK(torch::equal(out, row({1.0f, -2.0f, 0.5f, 3.0f})));
}

TEST_CASE("OpenAI penalties subtract frequency x count and presence once per generated id") {
  auto scores = row({2.0f, -1.0f, 0.5f, 3.0f});
  auto generated = torch::tensor({1, 1, 3}, torch::kLong).unsqueeze(0);
  auto out = cb::apply_occurrence_penalties(scores, generated, 0.5, 0.25);
  CHECK(torch::equal(out, row({2.0f, -1.0f - 1.0f - 0.25f, 0.5f, 3.0f - 0.5f - 0.25f})));
}

TEST_CASE("generate: logit_bias forces a token, the penalties count only generated ids") {
  auto model = random_model();
  auto ids = torch::randint(3, 40, {1, 5}, torch::kLong);
  cb::GenerateOptions o;
  o.max_new_tokens = 4;
  o.eos_token_id = -1;
  o.logit_bias = {{17, 100.0}};
  auto biased = cb::generate(model, ids, torch::Tensor(), o).sequences;
  CHECK(torch::equal(biased.narrow(1, 5, 4), torch::full({1, 4}, 17, torch::kLong)));
  o.presence_penalty = 1e6;  // a token once generated is never chosen again, whatever the bias
  auto varied = cb::generate(model, ids, torch::Tensor(), o).sequences.narrow(1, 5, 4);
  CHECK(varied[0][0].item<int64_t>() == 17);
  CHECK(std::get<0>(at::_unique(varied)).numel() == 4);
  o = {};
  o.max_new_tokens = 2;
  o.eos_token_id = -1;
  o.frequency_penalty = 1e6;  // the prompt's ids stay allowed: the first pick equals greedy's
  auto plain = cb::GenerateOptions{o};
  plain.frequency_penalty = 0;
  CHECK(cb::generate(model, ids, torch::Tensor(), o).sequences[0][5].item<int64_t>() ==
        cb::generate(model, ids, torch::Tensor(), plain).sequences[0][5].item<int64_t>());
  o.logit_bias = {{40000, 1.0}};
  CHECK_THROWS_WITH(cb::generate(model, ids, torch::Tensor(), o), Catch::Contains("logit_bias: token id 40000"));
}

TEST_CASE("sampling warpers: temperature, top-k, top-p in HF order") {
  cb::GenerateOptions o;
  o.top_k = 0;
  o.temperature = 2.0;
  CHECK(torch::equal(cb::apply_sampling_warpers(row({1, 4, 2, 3}), o), row({0.5f, 2, 1, 1.5f})));

  o.temperature = 1.0;
  o.top_k = 2;
  CHECK(torch::equal(cb::apply_sampling_warpers(row({1, 4, 2, 3}), o), row({-kInf, 4, -kInf, 3})));
  o.top_k = 1;  // ties with the k-th value are kept
  CHECK(torch::equal(cb::apply_sampling_warpers(row({1, 3, 3, 0}), o), row({-kInf, 3, 3, -kInf})));
  o.top_k = 10;  // more than the vocabulary: nothing removed
  CHECK(torch::equal(cb::apply_sampling_warpers(row({1, 3, 3, 0}), o), row({1, 3, 3, 0})));

  // probabilities 0.5, 0.3, 0.15, 0.05: cumulative (ascending) 0.05, 0.2, 0.5, 1
  auto logp = torch::log(row({0.15f, 0.5f, 0.05f, 0.3f}));
  o.top_k = 0;
  auto kept = [&](double p) {
    o.top_p = p;
    return torch::isfinite(cb::apply_sampling_warpers(logp, o));
  };
  CHECK(torch::equal(kept(0.9), torch::tensor({true, true, false, true}).unsqueeze(0)));
  CHECK(torch::equal(kept(0.7), torch::tensor({false, true, false, true}).unsqueeze(0)));
  CHECK(torch::equal(kept(0.3), torch::tensor({false, true, false, false}).unsqueeze(0)));
  CHECK(torch::equal(kept(1e-9), torch::tensor({false, true, false, false}).unsqueeze(0)));  // best always kept

  // temperature before top-p: T=0.5 sharpens 0.5/0.3/0.15/0.05 to ~0.69/0.25/0.06/0.007, so top-p 0.9
  // keeps two tokens instead of three.
  o.temperature = 0.5;
  CHECK(torch::equal(kept(0.9), torch::tensor({false, true, false, true}).unsqueeze(0)));
  // top-k before top-p: after top-k 1 only the best survives whatever top_p.
  o.temperature = 1.0;
  o.top_k = 1;
  CHECK(torch::equal(kept(0.99), torch::tensor({false, true, false, false}).unsqueeze(0)));
}

TEST_CASE("generate: sampling with top_k 1 equals greedy, sampling is reproducible under a seed") {
  auto model = random_model();
  auto ids = torch::randint(3, 40, {2, 5}, torch::kLong);
  cb::GenerateOptions greedy;
  greedy.max_new_tokens = 8;
  greedy.eos_token_id = -1;  // never produced: fixed length
  auto ref = cb::generate(model, ids, torch::Tensor(), greedy).sequences;
  auto sample = greedy;
  sample.do_sample = true;
  sample.top_k = 1;
  CHECK(torch::equal(cb::generate(model, ids, torch::Tensor(), sample).sequences, ref));

  sample.top_k = 50;
  sample.top_p = 0.9;
  sample.temperature = 1.5;
  torch::manual_seed(3);
  auto a = cb::generate(model, ids, torch::Tensor(), sample).sequences;
  torch::manual_seed(3);
  auto b = cb::generate(model, ids, torch::Tensor(), sample).sequences;
  CHECK(torch::equal(a, b));
  CHECK(a.size(1) == ids.size(1) + 8);
}

TEST_CASE("generate: eos finishes rows, pads them, and stops when all are finished") {
  auto model = random_model();
  auto ids = torch::randint(3, 40, {2, 5}, torch::kLong);
  cb::GenerateOptions o;
  o.max_new_tokens = 6;
  o.eos_token_id = -1;
  auto free_run = cb::generate(model, ids, torch::Tensor(), o).sequences;
  const auto P = ids.size(1);
  const auto first0 = free_run[0][P].item<int64_t>();
  REQUIRE(free_run[1][P].item<int64_t>() != first0);  // the random model gives different continuations

  o.eos_token_id = first0;  // row 0 finishes at step 0
  o.pad_token_id = 39;
  const auto result = cb::generate(model, ids, torch::Tensor(), o);
  const auto& out = result.sequences;
  CHECK(out[0][P].item<int64_t>() == first0);
  for (int64_t t = P + 1; t < out.size(1); ++t) CHECK(out[0][t].item<int64_t>() == 39);
  CHECK(result.new_tokens[0] == 1);  // the eos, not the padding after it
  int64_t row1 = 0;                  // up to and with row 1's first eos
  while (P + row1 < out.size(1) && out[1][P + row1++].item<int64_t>() != first0) {
  }
  CHECK(result.new_tokens[1] == row1);

  auto one = ids.narrow(0, 0, 1);
  CHECK(cb::generate(model, one, torch::Tensor(), o).sequences.size(1) == P + 1);  // all rows finished

  o.min_new_tokens = 3;  // eos forbidden for the first 3 tokens
  auto delayed = cb::generate(model, one, torch::Tensor(), o).sequences;
  REQUIRE(delayed.size(1) >= P + 3);
  for (int64_t t = P; t < P + 3; ++t) CHECK(delayed[0][t].item<int64_t>() != first0);
}

TEST_CASE("generate: stop sequences on row 0 and the streaming callback end generation") {
  auto model = random_model();
  auto ids = torch::randint(3, 40, {1, 4}, torch::kLong);
  cb::GenerateOptions o;
  o.max_new_tokens = 8;
  o.eos_token_id = -1;
  auto free_run = cb::generate(model, ids, torch::Tensor(), o).sequences;
  const auto P = ids.size(1);

  // Stop at the two-token sequence produced at steps 2-3 (or earlier, if it occurs before).
  o.stop_sequences = {{free_run[0][P + 2].item<int64_t>(), free_run[0][P + 3].item<int64_t>()}};
  auto stopped = cb::generate(model, ids, torch::Tensor(), o).sequences;
  CHECK(stopped.size(1) <= P + 4);
  CHECK(torch::equal(stopped, free_run.narrow(1, 0, stopped.size(1))));
  CHECK(torch::equal(stopped[0].narrow(0, stopped.size(1) - 2, 2), torch::tensor(o.stop_sequences[0])));

  o.stop_sequences.clear();
  std::vector<int64_t> streamed;
  o.on_token = [&](const torch::Tensor& t) {
    streamed.push_back(t[0].item<int64_t>());
    return streamed.size() == 3;
  };
  auto cut = cb::generate(model, ids, torch::Tensor(), o).sequences;
  CHECK(cut.size(1) == P + 3);
  CHECK(streamed == std::vector<int64_t>(cut[0].data_ptr<int64_t>() + P, cut[0].data_ptr<int64_t>() + P + 3));
}

TEST_CASE("generate: invalid options raise instead of silently decoding greedily") {
  auto model = random_model();
  auto ids = torch::randint(3, 40, {1, 4}, torch::kLong);
  cb::GenerateOptions o;
  o.num_beams = 0;
  CHECK_THROWS_WITH(cb::generate(model, ids, torch::Tensor(), o), Catch::Contains("num_beams"));
  o = {};
  o.do_sample = true;
  o.temperature = 0;
  CHECK_THROWS_AS(cb::generate(model, ids, torch::Tensor(), o), cb::Error);
  o = {};
  o.do_sample = true;
  o.top_p = 0;
  CHECK_THROWS_AS(cb::generate(model, ids, torch::Tensor(), o), cb::Error);
  o = {};
  o.repetition_penalty = 0;
  CHECK_THROWS_AS(cb::generate(model, ids, torch::Tensor(), o), cb::Error);
  o = {};
  o.max_new_tokens = 0;
  CHECK_THROWS_AS(cb::generate(model, ids, torch::Tensor(), o), cb::Error);
  o = {};
  CHECK_THROWS_AS(cb::generate(model, ids, torch::ones({1, 5}, torch::kLong), o), cb::Error);  // mask shape
}
