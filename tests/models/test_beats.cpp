// Golden case `beats`: the BEATs encoder and ln_audio on the fixture's fbank, with every dim and
// config taken from the fixture; plus the two state-dict layouts of the shared bias table.
#include <catch2/catch.hpp>

#include <map>

#include "framework/error.h"
#include "models/beats.h"
#include "models/layer_norm_fp32.h"
#include "tests/framework/checkpoint/expect.h"
#include "tests/support/golden.h"

using cb::test::check_close;
using cb::test::Fixture;
namespace tol = cb::test::tol;

static cb::BEATs fixture_beats(const Fixture& f) {
  cb::BEATs model(cb::BEATsConfig::from_json(f.config().at("beats_cfg"), "beats fixture beats_cfg"));
  model->eval();
  cb::load_beats_state_dict(model, cb::strip_prefix(f.weights(), "audio_encoder."), "beats fixture");
  return model;
}

TEST_CASE("beats golden: encoder_out and ln_audio") {
  Fixture f("beats");
  auto model = fixture_beats(f);
  torch::NoGradGuard no_grad;
  auto out = model->forward(f.get("input.fbank"));
  check_close(out, f.get("output.encoder_out"), tol::module, "beats encoder_out");

  cb::LayerNormFp32 ln(f.get("ln_audio.weight").size(0), f.config().at("ln_audio").at("eps").get<double>());
  cb::load_state_dict(*ln, cb::strip_prefix(f.weights(), "ln_audio."), true, "beats fixture ln_audio");
  check_close(ln(out), f.get("output.ln_audio"), tol::module, "beats ln_audio");
}

TEST_CASE("beats loads the relative bias table from layer 0 only and rejects differing copies") {
  Fixture f("beats");
  auto cfg = cb::BEATsConfig::from_json(f.config().at("beats_cfg"));
  REQUIRE(cfg.relative_position_embedding);
  REQUIRE(cfg.encoder_layers >= 2);
  auto sd = cb::strip_prefix(f.weights(), "audio_encoder.");
  const std::string suffix = ".self_attn.relative_attention_bias.weight";

  cb::StateDict layer0_only;
  for (const auto& kv : sd)
    if (kv.key().find(suffix) == std::string::npos || kv.key() == "encoder.layers.0" + suffix)
      layer0_only.insert(kv.key(), kv.value());
  cb::BEATs model(cfg);
  model->eval();
  cb::load_beats_state_dict(model, layer0_only, "layer-0-only state dict");
  torch::NoGradGuard no_grad;
  check_close(model->forward(f.get("input.fbank")), f.get("output.encoder_out"), tol::module,
              "beats encoder_out (bias table from layer 0 only)");

  auto bad = sd;
  bad["encoder.layers.1" + suffix] = bad["encoder.layers.1" + suffix] + 1;
  cb::BEATs other(cfg);
  CHECK_THROWS_AS(cb::load_beats_state_dict(other, bad, "tampered"), cb::Error);
}

TEST_CASE("beats config rejects malformed values") {
  CHECK_THROWS_AS(cb::BEATsConfig::from_json({{"input_patch_size", 16}, {"encoder_layers", "two"}}), cb::Error);
  CHECK_THROWS_AS(cb::BEATsConfig::from_json(nlohmann::json::object()), cb::Error);  // patch size default -1
  CHECK_THROWS_AS(cb::BEATsConfig::from_json({{"input_patch_size", 16}, {"encoder_attention_heads", 5}}), cb::Error);
  auto c = cb::BEATsConfig::from_json({{"input_patch_size", 16}, {"some_future_key", 1.5}});
  CHECK(c.encoder_embed_dim == 768);
}

TEST_CASE("beats loads Microsoft's checkpoint layout (cfg dict + model state dict, bias table in layer 0)") {
  const auto files = cb::test::ckpt_expectations_with_tensor("model/patch_embedding.weight");  // {cfg, model}
  REQUIRE(!files.empty());
  for (const auto& expect : files) {
    const auto path = expect.at("_path").get<std::string>();
    INFO(path);
    auto model = cb::load_beats_checkpoint(path);

    // Every cfg leaf the model reads came from the file.
    std::map<std::string, nlohmann::json> leaves;
    for (const auto& l : expect.at("leaves")) leaves[l.at("path").get<std::string>()] = l.at("value");
    const auto& c = model->cfg;
    CHECK(c.encoder_layers == leaves.at("cfg/encoder_layers").get<int64_t>());
    CHECK(c.encoder_embed_dim == leaves.at("cfg/encoder_embed_dim").get<int64_t>());
    CHECK(c.encoder_ffn_embed_dim == leaves.at("cfg/encoder_ffn_embed_dim").get<int64_t>());
    CHECK(c.encoder_attention_heads == leaves.at("cfg/encoder_attention_heads").get<int64_t>());
    CHECK(c.input_patch_size == leaves.at("cfg/input_patch_size").get<int64_t>());
    CHECK(c.embed_dim == leaves.at("cfg/embed_dim").get<int64_t>());
    CHECK(c.conv_pos == leaves.at("cfg/conv_pos").get<int64_t>());
    CHECK(c.num_buckets == leaves.at("cfg/num_buckets").get<int64_t>());
    CHECK(c.deep_norm == leaves.at("cfg/deep_norm").get<bool>());
    CHECK(c.finetuned_model == leaves.at("cfg/finetuned_model").get<bool>());

    // The loaded tensors are the file's (value checks from the expect file), the shared table included.
    auto sd = cb::module_state_dict(*model);
    for (const auto& t : expect.at("tensors")) {
      auto key = t.at("path").get<std::string>().substr(std::string("model/").size());
      REQUIRE(sd.contains(key));
      CHECK(sd[key].sum().item<double>() == Approx(t.at("sum").get<double>()).margin(1e-6));
    }
    const std::string table = ".self_attn.relative_attention_bias.weight";
    for (int64_t i = 1; i < c.encoder_layers; ++i)
      CHECK(torch::equal(sd["encoder.layers." + std::to_string(i) + table], sd["encoder.layers.0" + table]));

    torch::NoGradGuard no_grad;
    const int64_t p = c.input_patch_size;
    auto out = model->forward(torch::randn({2, 4 * p, 2 * p}));
    CHECK(out.sizes() == torch::IntArrayRef({2, 8, c.encoder_embed_dim}));
    CHECK(torch::isfinite(out).all().item<bool>());
  }
}

TEST_CASE("a freshly built BEATs (no checkpoint) gives finite outputs") {
  cb::test::Fixture f("beats");
  cb::BEATs model(cb::BEATsConfig::from_json(f.config().at("beats_cfg"), "beats fixture"));
  model->eval();
  torch::NoGradGuard no_grad;
  auto out = model(f.get("input.fbank"));
  CHECK(torch::isfinite(out).all().item<bool>());
}
