// Golden case `beats`: the BEATs encoder and ln_audio on the fixture's fbank, with every dim and
// config taken from the fixture; plus the two state-dict layouts of the shared bias table.
#include <catch2/catch.hpp>

#include "framework/error.h"
#include "models/beats.h"
#include "models/layer_norm_fp32.h"
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
