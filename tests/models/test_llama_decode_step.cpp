// llama_decode_step (models/llama_decode_step.h): a CPU decode step through the kernels on plain buffers
// gives the same bits as the modules' forward, for every storage format, grouped-query heads, several rows,
// given positions and embeddings, and across the KV cache's growth; and it declines what it does not take.
#include <catch2/catch.hpp>

#include "models/generation.h"
#include "models/llama.h"
#include "models/llama_decode_step.h"

using namespace cb;

namespace {

LlamaConfig small_config(int64_t kv_heads) {
  LlamaConfig c;
  c.vocab_size = 300;
  c.hidden_size = 64;  // block formats need widths in multiples of 32
  c.intermediate_size = 160;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = kv_heads;
  return c;
}

// Both caches' slots hold the same values and lengths.
bool same_caches(const LlamaKVCache& a, const LlamaKVCache& b) {
  if (a.keys.size() != b.keys.size()) return false;
  for (size_t i = 0; i < a.keys.size(); ++i)
    if (!torch::equal(a.keys[i], b.keys[i]) || !torch::equal(a.values[i], b.values[i])) return false;
  return true;
}

// A forward of `len` random tokens for each of B rows that fills `cache`; the logits of the last position.
torch::Tensor prefill(LlamaForCausalLM& model, int64_t B, int64_t len, LlamaKVCache& cache) {
  LlamaInputs in;
  in.input_ids = torch::randint(300, {B, len}, torch::kLong);
  in.last_logits_only = true;
  in.cache = &cache;
  return model->forward(in).logits;
}

// One step's logits through llama_decode_step (extending `fused`) and through the modules (extending
// `modules`), and whether the first took the decode step.
struct BothPaths {
  torch::Tensor fused, modules;
  bool applied;
};
BothPaths both_paths(LlamaForCausalLM& model, LlamaInputs in, LlamaKVCache& fused, LlamaKVCache& modules) {
  in.cache = &fused;
  const bool applied = llama_decode_step_applies(*model->model, in);
  model->model->cpu_decode_step = true;
  auto a = model->forward(in).logits;
  in.cache = &modules;
  model->model->cpu_decode_step = false;
  auto b = model->forward(in).logits;
  model->model->cpu_decode_step = true;
  return {a, b, applied};
}

}  // namespace

TEST_CASE("llama decode step: the modules' bits, step after step, for every format, GQA and several rows") {
  c10::InferenceMode inference;
  for (const std::string precision : {"fp32", "bf16", "fp16", "q8_0", "q4_0"})
    for (const int64_t kv_heads : {4, 2})
      for (const int64_t B : {1, 3}) {
        INFO(precision << ", " << kv_heads << " kv heads, " << B << " rows");
        torch::manual_seed(7);
        LlamaForCausalLM model(small_config(kv_heads), LlamaStorage::from_precision(precision));
        model->eval();
        LlamaKVCache fused, modules;  // one cache per path, filled by the same prefill
        torch::manual_seed(11);
        auto next = greedy_pick(prefill(model, B, 5, fused).select(1, 0));
        torch::manual_seed(11);
        prefill(model, B, 5, modules);
        // 40 steps: the first makes each slot a buffer with room for 38 positions, step 33 outgrows it.
        for (int step = 0; step < 40; ++step) {
          INFO("step " << step);
          LlamaInputs in;
          in.input_ids = next.unsqueeze(1);
          in.last_logits_only = true;
          const auto r = both_paths(model, in, fused, modules);
          REQUIRE(r.applied);
          REQUIRE(r.fused.sizes() == r.modules.sizes());
          REQUIRE(torch::equal(r.fused, r.modules));
          REQUIRE(same_caches(fused, modules));
          next = greedy_pick(r.fused.select(1, 0));
        }
        CHECK(fused.length() == 45);
      }
}

TEST_CASE("llama decode step: given positions, embeddings and an all-ones mask give the modules' bits") {
  c10::InferenceMode inference;
  torch::manual_seed(3);
  LlamaForCausalLM model(small_config(4), LlamaStorage::from_precision("q4_0"));
  model->eval();
  LlamaKVCache fused, modules;
  for (auto* cache : {&fused, &modules}) {
    torch::manual_seed(11);
    prefill(model, 2, 4, *cache);
  }
  for (int step = 0; step < 3; ++step) {
    LlamaInputs in;
    if (step == 1) in.inputs_embeds = model->embed(torch::randint(300, {2, 1}, torch::kLong));
    else in.input_ids = torch::randint(300, {2, 1}, torch::kLong);
    in.position_ids = torch::tensor({int64_t{9 + step}, int64_t{4 + step}}, torch::kLong).view({2, 1});
    in.attention_mask = torch::ones({2, 5 + step}, torch::kLong);
    const auto r = both_paths(model, in, fused, modules);
    REQUIRE(r.applied);
    CHECK(torch::equal(r.fused, r.modules));
    CHECK(same_caches(fused, modules));
  }
}

TEST_CASE("llama decode step: declines padding, autograd, several positions, no cache and too many rows") {
  torch::manual_seed(5);
  LlamaForCausalLM model(small_config(4), LlamaStorage::from_precision("fp32"));
  model->eval();
  LlamaKVCache cache;
  {
    c10::InferenceMode inference;
    prefill(model, 2, 4, cache);
  }
  LlamaInputs in;
  in.input_ids = torch::randint(300, {2, 1}, torch::kLong);
  in.cache = &cache;
  {
    torch::NoGradGuard no_grad;
    CHECK(llama_decode_step_applies(*model->model, in));
    auto padded = in;
    padded.attention_mask = torch::ones({2, 5}, torch::kLong);
    padded.attention_mask[1][0] = 0;
    CHECK_FALSE(llama_decode_step_applies(*model->model, padded));
    const auto cache_length = cache.length();
    CHECK_FALSE(llama_decode_step(*model->model, padded).defined());
    CHECK(cache.length() == cache_length);
    auto two = in;
    two.input_ids = torch::randint(300, {2, 2}, torch::kLong);
    CHECK_FALSE(llama_decode_step_applies(*model->model, two));
    auto no_cache = in;
    no_cache.cache = nullptr;
    CHECK_FALSE(llama_decode_step_applies(*model->model, no_cache));
    auto out_of_vocab = in;
    out_of_vocab.input_ids = torch::full({2, 1}, 300, torch::kLong);
    CHECK_FALSE(llama_decode_step_applies(*model->model, out_of_vocab));  // the embedding's error, not ours
    auto far = in;
    far.position_ids = torch::full({2, 1}, 5000, torch::kLong);
    CHECK_FALSE(llama_decode_step_applies(*model->model, far));
  }
  CHECK_FALSE(llama_decode_step_applies(*model->model, in));  // grad mode on
  {
    torch::NoGradGuard no_grad;
    LlamaKVCache wide;
    prefill(model, 17, 2, wide);
    LlamaInputs step;
    step.input_ids = torch::randint(300, {17, 1}, torch::kLong);
    step.cache = &wide;
    CHECK_FALSE(llama_decode_step_applies(*model->model, step));
  }
}
