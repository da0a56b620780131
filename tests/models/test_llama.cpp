// Golden case `llama` (tests/golden/README.md): LlamaForCausalLM forward (ids and embeddings, left
// padding, loss) and HF-4.28 greedy generation, against the original's outputs.
#include <catch2/catch.hpp>

#include "framework/checkpoint/state_dict.h"
#include "models/generation.h"
#include "models/llama.h"
#include "tests/support/golden.h"

using cb::test::Fixture;
namespace tol = cb::test::tol;

namespace {

const Fixture& fixture() {
  static const Fixture f("llama");
  return f;
}

cb::LlamaForCausalLM fixture_model() {
  const auto& f = fixture();
  cb::LlamaForCausalLM model(cb::LlamaConfig::from_json(f.config().at("llama_config"), "llama fixture config"));
  cb::load_state_dict(*model, f.weights(), /*strict=*/true, "llama fixture", "llama_model.");
  model->eval();
  return model;
}

// Rows of `t` [B,L,...] where mask [B,L] == 1, flattened to [N,...].
torch::Tensor where_attended(const torch::Tensor& t, const torch::Tensor& mask) { return t.index({mask == 1}); }

cb::GenerateOptions fixture_generate_options() {
  const auto g = fixture().config().at("generate");
  cb::GenerateOptions o;
  o.max_new_tokens = g.at("max_new_tokens").get<int64_t>();
  o.do_sample = g.at("do_sample").get<bool>();
  o.num_beams = g.at("num_beams").get<int64_t>();
  o.eos_token_id = g.at("eos_token_id").get<int64_t>();
  o.pad_token_id = g.at("pad_token_id").get<int64_t>();
  o.use_cache = g.at("use_cache").get<bool>();
  o.output_scores = true;
  return o;
}

}  // namespace

TEST_CASE("llama: fixture weights load strictly under the HF state-dict names") {
  const auto& f = fixture();
  cb::LlamaForCausalLM model(cb::LlamaConfig::from_json(f.config().at("llama_config")));
  auto own = cb::module_state_dict(*model);
  auto ref = cb::strip_prefix(f.weights(), "llama_model.");
  REQUIRE(own.size() == ref.size());
  // A freshly built model already has the original's inv_freq buffers (1/10000^(2i/Dh) in fp32).
  for (const auto& kv : ref)
    if (kv.key().find("rotary_emb.inv_freq") != std::string::npos)
      cb::test::check_close(own[kv.key()], kv.value(), {1e-7, 0}, kv.key());
  auto report = cb::load_state_dict(*model, f.weights(), /*strict=*/true, "llama fixture", "llama_model.");
  CHECK(report.loaded == ref.size());
}

TEST_CASE("llama: forward from ids on a left-padded batch (logits, loss)") {
  const auto& f = fixture();
  auto model = fixture_model();
  torch::NoGradGuard no_grad;
  cb::LlamaInputs in;
  in.input_ids = f.get("input.input_ids");
  in.attention_mask = f.get("input.attention_mask");
  in.labels = f.get("input.labels");
  auto out = model->forward(in);
  auto ref = f.get("output.logits");
  cb::test::check_close(where_attended(out.logits, in.attention_mask), where_attended(ref, in.attention_mask),
                        tol::module, "llama logits (attended positions)");
  // Same mask arithmetic as the original: fully masked (padding) rows match too.
  cb::test::check_close(out.logits, ref, tol::module, "llama logits (all positions)");
  cb::test::check_close(out.loss.reshape({1}), f.get("output.loss"), tol::loss, "llama loss");
}

TEST_CASE("llama: forward from inputs_embeds laid out like ChatBridge stage 2 (logits, loss)") {
  const auto& f = fixture();
  auto model = fixture_model();
  torch::NoGradGuard no_grad;
  cb::LlamaInputs in;
  in.inputs_embeds = f.get("input.embeds.inputs_embeds");
  in.attention_mask = f.get("input.embeds.attention_mask");
  in.labels = f.get("input.embeds.labels");
  auto out = model->forward(in);
  auto ref = f.get("output.embeds.logits");
  cb::test::check_close(where_attended(out.logits, in.attention_mask), where_attended(ref, in.attention_mask),
                        tol::module, "llama embeds logits (attended positions)");
  cb::test::check_close(out.logits, ref, tol::module, "llama embeds logits (all positions)");
  cb::test::check_close(out.loss.reshape({1}), f.get("output.embeds.loss"), tol::loss, "llama embeds loss");
}

TEST_CASE("llama: KV-cached forward equals the full forward") {
  const auto& f = fixture();
  auto model = fixture_model();
  torch::NoGradGuard no_grad;
  auto ids = f.get("input.input_ids");
  auto mask = f.get("input.attention_mask");
  const auto L = ids.size(1), split = L / 2;
  cb::LlamaInputs full;
  full.input_ids = ids;
  full.attention_mask = mask;
  auto ref = model->forward(full).logits;

  cb::LlamaKVCache cache;
  cb::LlamaInputs a;
  a.input_ids = ids.narrow(1, 0, split);
  a.attention_mask = mask.narrow(1, 0, split);
  a.cache = &cache;
  auto first = model->forward(a).logits;
  REQUIRE(cache.length() == split);
  cb::LlamaInputs b;
  b.input_ids = ids.narrow(1, split, L - split);
  b.attention_mask = mask;
  b.cache = &cache;
  auto second = model->forward(b).logits;
  REQUIRE(cache.length() == L);
  // Fully masked (padding) query rows attend to every key they see, and the first call sees fewer
  // keys: only attended positions are comparable.
  cb::test::check_close(where_attended(torch::cat({first, second}, 1), mask), where_attended(ref, mask), tol::module,
                        "llama cached forward vs full forward (attended positions)");
}

TEST_CASE("llama: greedy generation with and without KV cache (HF 4.28 generate)") {
  const auto& f = fixture();
  auto model = fixture_model();
  auto ids = f.get("input.generate.input_ids");
  auto mask = f.get("input.generate.attention_mask");
  auto ref_seq = f.get("output.generate.sequences");
  auto ref_chosen = f.get("output.generate.chosen_logit");
  auto ref_margin = f.get("output.generate.top2_margin");
  auto options = fixture_generate_options();

  for (bool use_cache : {true, false}) {
    INFO("use_cache " << use_cache);
    options.use_cache = use_cache;
    auto result = cb::generate(model, ids, mask, options);
    cb::test::check_equal(result.sequences, ref_seq,
                          use_cache ? "llama greedy sequences (cache)" : "llama greedy sequences (no cache)");
    REQUIRE(static_cast<int64_t>(result.scores.size()) == ref_chosen.size(1));
    auto scores = torch::stack(result.scores, 1);  // [B,steps,V]
    auto top2 = std::get<0>(scores.topk(2, -1));   // [B,steps,2]
    const std::string tag = use_cache ? " (cache)" : " (no cache)";
    cb::test::check_close(top2.select(-1, 0), ref_chosen, tol::module, "llama greedy chosen logit" + tag);
    cb::test::check_close(top2.select(-1, 0) - top2.select(-1, 1), ref_margin, tol::module,
                          "llama greedy top-2 margin" + tag);
  }
}

TEST_CASE("llama: greedy generation from embeddings continues like generation from ids") {
  // ChatBridge generates from inputs_embeds; on the same (unpadded) prompt this must produce the same
  // new tokens as the ids path.
  const auto& f = fixture();
  auto model = fixture_model();
  auto ids = f.get("input.generate.input_ids");
  auto mask = f.get("input.generate.attention_mask");
  auto options = fixture_generate_options();
  auto prompt = ids[0].index({mask[0] == 1}).unsqueeze(0);  // row 0 without its padding
  auto from_ids = cb::generate(model, prompt, torch::Tensor(), options).sequences;
  auto new_from_ids = from_ids.narrow(1, prompt.size(1), from_ids.size(1) - prompt.size(1));
  torch::Tensor embeds;
  {
    torch::NoGradGuard no_grad;
    embeds = model->embed(prompt);
  }
  const auto bos = f.config().at("llama_config").at("bos_token_id").get<int64_t>();
  for (bool use_cache : {true, false}) {
    options.use_cache = use_cache;
    auto from_embeds = cb::generate_from_embeds(model, embeds, torch::Tensor(), options).sequences;
    CHECK(from_embeds[0][0].item<int64_t>() == bos);  // HF 4.28's never-fed placeholder
    cb::test::check_equal(from_embeds.narrow(1, 1, from_embeds.size(1) - 1), new_from_ids,
                          use_cache ? "embeds generation (cache)" : "embeds generation (no cache)");
  }
}
