// The golden model cases (tests/golden/README.md) on CUDA: fp32 within the CPU's own bound of the
// original's reference, the original's fp16 path (ViT weights in fp16 under autocast as
// convert_weights_to_fp16 + maybe_autocast; Vicuna loaded in fp16) within tol::cuda_fp16, and greedy
// decoding on the golden LLaMA giving the reference tokens. Skipped without a CUDA device.
#include <catch2/catch.hpp>

#include "framework/autocast.h"
#include "framework/checkpoint/state_dict.h"
#include "models/beats.h"
#include "models/eva_vit.h"
#include "models/generation.h"
#include "models/layer_norm_fp32.h"
#include "models/llama.h"
#include "models/qformer.h"
#include "tests/gpu/gpu_test.h"
#include "tests/models/chatbridge_fixture.h"

using namespace cb;
using namespace cb::test;

namespace {

VisionTransformer fixture_vit(const Fixture& f) {
  VisionTransformer vit(EvaVitConfig::from_json(f.config().at("vit"), f.name()));
  load_state_dict(*vit, strip_prefix(f.weights(), "visual_encoder."), /*strict=*/true, f.name());
  vit->eval();
  return vit;
}

LlamaForCausalLM fixture_llama(const Fixture& f) {
  LlamaForCausalLM model(LlamaConfig::from_json(f.config().at("llama_config"), f.name()));
  load_state_dict(*model, f.weights(), /*strict=*/true, f.name(), "llama_model.");
  model->eval();
  return model;
}

// Rows of `t` [B,L,...] where mask [B,L] == 1, flattened: padded positions hold no meaningful logits in fp16.
torch::Tensor attended(const torch::Tensor& t, const torch::Tensor& mask) { return t.index({mask == 1}); }

}  // namespace

TEST_CASE("gpu eva_vit: fp32 features on CUDA, fp16 weights under autocast (vit_precision fp16)") {
  const auto dev = cuda_or_skip("gpu eva_vit");
  Fixture f("eva_vit");
  auto vit = fixture_vit(f);
  LayerNormFp32 ln_vision(vit->num_features(), f.config().at("ln_vision").at("eps").get<double>());
  load_state_dict(*ln_vision, strip_prefix(f.weights(), "ln_vision."), /*strict=*/true, f.name());
  vit->to(dev);
  ln_vision->to(dev);
  torch::NoGradGuard no_grad;
  const auto image = f.get("input.image").to(dev);
  auto features = vit(image);
  check_close(features.cpu(), f.get("output.features"), tol::cuda_fp32, "cuda fp32 eva_vit features");
  check_close(ln_vision(features).cpu(), f.get("output.ln_vision"), tol::cuda_fp32, "cuda fp32 eva_vit ln_vision");

  apply_vit_precision(vit, "fp16", dev);
  REQUIRE(vit->parameters().front().device().is_cuda());
  AutocastGuard autocast(true, dev);
  auto half = vit(image);
  check_close(half.to(torch::kFloat).cpu(), f.get("output.features"), tol::cuda_fp16, "cuda fp16 eva_vit features");
  check_close(ln_vision(half).to(torch::kFloat).cpu(), f.get("output.ln_vision"), tol::cuda_fp16,
              "cuda fp16 eva_vit ln_vision");
}

TEST_CASE("gpu beats: fp32 encoder_out and ln_audio on CUDA") {
  const auto dev = cuda_or_skip("gpu beats");
  Fixture f("beats");
  BEATs model(BEATsConfig::from_json(f.config().at("beats_cfg"), f.name()));
  model->eval();
  load_beats_state_dict(model, strip_prefix(f.weights(), "audio_encoder."), f.name());
  LayerNormFp32 ln(f.get("ln_audio.weight").size(0), f.config().at("ln_audio").at("eps").get<double>());
  load_state_dict(*ln, strip_prefix(f.weights(), "ln_audio."), /*strict=*/true, f.name());
  model->to(dev);
  ln->to(dev);
  torch::NoGradGuard no_grad;
  auto out = model->forward(f.get("input.fbank").to(dev));
  check_close(out.cpu(), f.get("output.encoder_out"), tol::cuda_fp32, "cuda fp32 beats encoder_out");
  check_close(ln(out).cpu(), f.get("output.ln_audio"), tol::cuda_fp32, "cuda fp32 beats ln_audio");
}

TEST_CASE("gpu qformer: fp32 last_hidden_state on CUDA, partial and full encoder mask") {
  const auto dev = cuda_or_skip("gpu qformer");
  Fixture f("qformer");
  Qformer q(BertConfig::from_json(f.config().at("bert_config")));
  load_state_dict(*q, strip_prefix(f.weights(), "Qformer."), /*strict=*/true, f.name());
  q->eval();
  q->to(dev);
  torch::NoGradGuard no_grad;
  const auto queries = f.get("input.query_embeds").to(dev);
  const auto enc = f.get("input.encoder_hidden_states").to(dev);
  const auto mask = f.get("input.encoder_attention_mask").to(dev);
  check_close(q(queries, enc, mask).cpu(), f.get("output.last_hidden_state"), tol::cuda_fp32,
              "cuda fp32 qformer last_hidden_state");
  check_close(q(queries, enc, torch::ones_like(mask)).cpu(), f.get("output.last_hidden_state_fullmask"), tol::cuda_fp32,
              "cuda fp32 qformer last_hidden_state_fullmask");
}

TEST_CASE("gpu llama: fp32 logits and loss on CUDA, fp16 weights (Vicuna as the original loads it)") {
  const auto dev = cuda_or_skip("gpu llama");
  Fixture f("llama");
  auto model = fixture_llama(f);
  model->to(dev);
  torch::NoGradGuard no_grad;
  LlamaInputs in;
  in.input_ids = f.get("input.input_ids").to(dev);
  in.attention_mask = f.get("input.attention_mask").to(dev);
  in.labels = f.get("input.labels").to(dev);
  const auto mask = f.get("input.attention_mask");
  const auto ref = f.get("output.logits");
  auto out = model->forward(in);
  check_close(attended(out.logits.cpu(), mask), attended(ref, mask), tol::cuda_fp32, "cuda fp32 llama logits");
  check_close(out.loss.reshape({1}).cpu(), f.get("output.loss"), tol::loss, "cuda fp32 llama loss");

  model->to(torch::kHalf);
  REQUIRE(model->dtype() == torch::kHalf);
  auto half = model->forward(in);
  check_close(attended(half.logits.to(torch::kFloat).cpu(), mask), attended(ref, mask), tol::cuda_fp16,
              "cuda fp16 llama logits");
  check_close(half.loss.to(torch::kFloat).reshape({1}).cpu(), f.get("output.loss"), tol::cuda_fp16_loss,
              "cuda fp16 llama loss");
}

TEST_CASE("gpu llama: greedy decoding on CUDA gives the CPU's tokens, with and without the KV cache") {
  const auto dev = cuda_or_skip("gpu llama greedy");
  Fixture f("llama");
  auto model = fixture_llama(f);
  model->to(dev);
  const auto g = f.config().at("generate");
  GenerateOptions o;
  o.max_new_tokens = g.at("max_new_tokens").get<int64_t>();
  o.num_beams = g.at("num_beams").get<int64_t>();
  o.eos_token_id = g.at("eos_token_id").get<int64_t>();
  o.pad_token_id = g.at("pad_token_id").get<int64_t>();
  REQUIRE_FALSE(g.at("do_sample").get<bool>());
  const auto ids = f.get("input.generate.input_ids").to(dev);
  const auto mask = f.get("input.generate.attention_mask").to(dev);
  for (bool cache : {true, false}) {
    o.use_cache = cache;
    auto result = generate(model, ids, mask, o);
    check_equal(result.sequences.cpu(), f.get("output.generate.sequences"),
                cache ? "cuda greedy sequences (cache)" : "cuda greedy sequences (no cache)");
  }
}

namespace {

// One golden ChatBridge case on CUDA the way the product runs it there, which is the original's CUDA
// path: place() gives the ViT fp16 weights, the LLaMA is fp16 (llama_precision's CUDA default), and
// the model's own maybe_autocast() runs encoding and the loss in fp16 (no autocast here: without the
// model's, the fp16 ViT would not run). Every batch's features and LLaMA inputs within tol::cuda_fp16,
// the targets exact, the loss within tol::cuda_fp16_loss. (The fp32 CUDA math of each part is checked
// by the module cases above.)
void chatbridge_case_on(const std::string& name, torch::Device dev) {
  Fixture f(name);
  auto config = f.config();
  config["vit_precision"] = "fp16";
  auto model = chatbridge_from_fixture(f, config);
  model->eval();
  model->place(dev);
  model->llama_model->to(torch::kHalf);
  REQUIRE(model->visual_encoder->patch_embed->proj->weight.scalar_type() == torch::kHalf);
  torch::NoGradGuard no_grad;
  auto batches = f.meta("batches");
  REQUIRE(!batches.empty());
  for (auto it = batches.begin(); it != batches.end(); ++it) {
    const std::string out = "output." + it.key() + ".";
    const std::string tag = "cuda fp16 " + name + " " + out;
    auto r = model->forward(to_device(batch_from_fixture(f, it.key(), it.value().at("task")), dev));
    const bool stage1 = model->config().stage == 1;
    for (size_t j = 0; j < r.features.size(); ++j) {
      auto key = out + "feat_embeds" + (stage1 ? "" : std::to_string(j));
      check_close(r.features[j].embeds.to(torch::kFloat).cpu(), f.get(key), tol::cuda_fp16, tag + key);
    }
    check_close(r.llama.inputs_embeds.to(torch::kFloat).cpu(), f.get(out + "inputs_embeds"), tol::cuda_fp16,
                tag + "inputs_embeds");
    check_equal(r.llama.targets.cpu(), f.get(out + "targets"), tag + "targets");
    check_close(r.loss.to(torch::kFloat).reshape({1}).cpu(), f.get(out + "loss"), tol::cuda_fp16_loss, tag + "loss");
  }
}

}  // namespace

TEST_CASE("gpu chatbridge_stage1: the original's fp16 CUDA path (place, maybe_autocast)") {
  chatbridge_case_on("chatbridge_stage1", cuda_or_skip("gpu chatbridge_stage1"));
}

TEST_CASE("gpu chatbridge_stage2: the original's fp16 CUDA path (place, maybe_autocast)") {
  chatbridge_case_on("chatbridge_stage2", cuda_or_skip("gpu chatbridge_stage2"));
}
