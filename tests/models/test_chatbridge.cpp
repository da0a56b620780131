// ChatBridge structure: the parameter description used by --dry-run equals a built model's state dict,
// for every golden configuration and for variants of it; freezing and modality routing.
#include <catch2/catch.hpp>

#include <map>

#include "tests/models/chatbridge_fixture.h"

using namespace cb;
using namespace cb::test;

static void check_description(const ChatBridgeConfig& cfg) {
  ChatBridge model(cfg, LlamaTokenizer::load(golden_dir() / "tokenizer.model"));
  std::map<std::string, std::pair<std::vector<int64_t>, bool>> built;
  for (const auto& kv : module_state_dict(*model))
    built[kv.key()] = {kv.value().sizes().vec(), kv.value().requires_grad()};
  std::map<std::string, std::pair<std::vector<int64_t>, bool>> described;
  for (const auto& p : describe_parameters(cfg)) described[p.name] = {p.shape, p.trainable};
  REQUIRE(described.size() == built.size());
  for (const auto& [name, v] : built) {
    INFO(name);
    REQUIRE(described.count(name));
    CHECK(described[name].first == v.first);
    CHECK(described[name].second == v.second);
  }
}

TEST_CASE("describe_parameters matches the built model for every golden configuration") {
  for (const auto* name : {"chatbridge_stage1", "chatbridge_stage2"}) {
    Fixture f(name);
    auto cfg = ChatBridgeConfig::from_json(f.config(), name);
    check_description(cfg);
    SECTION(std::string(name) + " with everything trainable and without temporal embeddings") {
      cfg.freeze_vit = cfg.freeze_beat = cfg.freeze_qformer = false;
      cfg.multi_sample = false;
      check_description(cfg);
    }
  }
}

TEST_CASE("full-size ChatBridge parameter counts (EVA-ViT-G, Q-Former, Vicuna-13B)") {
  auto cfg = ChatBridgeConfig::from_json(nlohmann::json{{"image_size", 224}, {"num_query_token", 32}});
  std::map<std::string, int64_t> part;
  for (const auto& p : describe_parameters(cfg)) part[p.name.substr(0, p.name.find('.'))] += p.numel();
  // Published sizes: EVA ViT-g (39 blocks) ~1.0B, BEATs ~90M, Q-Former ~0.1B, LLaMA-13B ~13.0B.
  CHECK(part["visual_encoder"] == Approx(0.985e9).epsilon(0.02));
  CHECK(part["Qformer"] == Approx(0.105e9).epsilon(0.1));
  CHECK(part["audio_encoder"] == Approx(0.090e9).epsilon(0.05));
  CHECK(part["llama_model"] == Approx(13.016e9).epsilon(0.01));
}

TEST_CASE("modality routing follows the original's substring tests") {
  Fixture f("chatbridge_stage1");
  auto model = chatbridge_from_fixture(f, f.config());
  torch::NoGradGuard no_grad;
  auto video = batch_from_fixture(f, "video", "ti");
  auto audio = batch_from_fixture(f, "audio", "ta");
  Batch both = video;
  both.audio = audio.audio;
  both.task = "tva-conv";
  CHECK(model->encode(both).size() == 2);
  both.task = "ta-cap";
  CHECK(torch::equal(model->encode(both)[0].embeds, model->encode_audio(audio.audio).embeds));
  both.task = "tv-cap";
  CHECK(torch::equal(model->encode(both)[0].embeds, model->encode_img(video.image).embeds));
  both.task = "xyz";
  CHECK_THROWS_WITH(model->encode(both), Catch::Contains("selects no modality"));
}
