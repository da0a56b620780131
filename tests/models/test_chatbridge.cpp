// ChatBridge structure: the model registry's skeleton (what --dry-run prints) is the built model's
// state dict, key for key, with no storage; freezing and modality routing.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <tuple>

#include "framework/checkpoint/safetensors.h"
#include "framework/config.h"
#include "models/model_factory.h"
#include "tests/models/chatbridge_fixture.h"

using namespace cb;
using namespace cb::test;

// A `model:` section as a resolved config holds it (keys under "model.", so absent ones get their defaults).
static Config model_section(const nlohmann::json& j) {
  return Config(parse_yaml(nlohmann::json{{"model", j}}.dump(), "test"), "test").sub("model");
}

static std::shared_ptr<torch::nn::Module> skeleton_of(const nlohmann::json& model_cfg) {
  return registry::get<Kind::model>("chatbridge").skeleton(model_section(model_cfg));
}

static void check_skeleton(const nlohmann::json& model_cfg) {
  ChatBridge model(ChatBridgeConfig::from_config(model_section(model_cfg)), LlamaTokenizer::load(golden_tokenizer()));
  model->load_pretrained();  // no files named: gives the frozen encoders their precision only
  const auto skeleton = skeleton_of(model_cfg);
  using Entry = std::tuple<std::vector<int64_t>, bool, torch::ScalarType>;  // shape, trainable, dtype
  std::map<std::string, Entry> built, described;
  for (const auto& kv : module_state_dict(*model))
    built[kv.key()] = {kv.value().sizes().vec(), kv.value().requires_grad(), kv.value().scalar_type()};
  for (const auto& kv : module_state_dict(*skeleton)) {
    INFO(kv.key());
    CHECK(kv.value().is_meta());
    described[kv.key()] = {kv.value().sizes().vec(), kv.value().requires_grad(), kv.value().scalar_type()};
  }
  REQUIRE(described.size() == built.size());
  for (const auto& [name, v] : built) {
    INFO(name);
    REQUIRE(described.count(name));
    CHECK(described[name] == v);
  }
}

TEST_CASE("the ChatBridge skeleton is the built model's state dict for every golden configuration") {
  for (const auto* name : {"chatbridge_stage1", "chatbridge_stage2"}) {
    auto config = Fixture(name).config();
    check_skeleton(config);
    SECTION(std::string(name) + " with everything trainable and without temporal embeddings") {
      config["freeze_vit"] = config["freeze_beat"] = config["freeze_qformer"] = false;
      config["multi_sample"] = false;
      check_skeleton(config);
    }
    SECTION(std::string(name) + " with a bf16 ViT and BEATs (the dtypes --dry-run's memory plan counts)") {
      config["vit_precision"] = config["beats_precision"] = "bf16";
      check_skeleton(config);
    }
  }
}

TEST_CASE("full-size ChatBridge skeleton: parameter counts (EVA-ViT-G, Q-Former, Vicuna-13B), no storage") {
  const auto skeleton = skeleton_of({{"image_size", 224}, {"num_query_token", 32}});
  std::map<std::string, int64_t> part;
  for (const auto& p : skeleton->named_parameters()) {
    INFO(p.key());
    REQUIRE(p.value().is_meta());
    part[p.key().substr(0, p.key().find('.'))] += p.value().numel();
  }
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

TEST_CASE("model.ckpt takes a flat .safetensors state dict (chatbridge-convert --chatbridge) as well as a directory") {
  Fixture f("chatbridge_stage2");
  const auto dir = std::filesystem::temp_directory_path() / ("cb-ckpt-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "step");
  save_safetensors(dir / "whole.safetensors", f.weights());
  save_safetensors(dir / "step" / "model.safetensors", f.weights());
  for (const auto& ckpt : {dir / "whole.safetensors", dir / "step"}) {
    INFO(ckpt.string());
    auto cfg = f.config();
    cfg["ckpt"] = ckpt.string();
    ChatBridge model(ChatBridgeConfig::from_config(model_section(cfg)), LlamaTokenizer::load(golden_tokenizer()));
    model->load_pretrained();
    const auto sd = module_state_dict(*model);
    for (const auto& kv : f.weights()) {
      INFO(kv.key());
      REQUIRE(sd.contains(kv.key()));
      CHECK(torch::equal(sd[kv.key()], kv.value()));
    }
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("a missing weight file fails before anything loads, naming the key and where it was set") {
  Fixture f("chatbridge_stage2");
  auto cfg = f.config();
  CHECK_NOTHROW(ChatBridgeConfig::from_config(model_section(cfg)).check_weight_files(model_section(cfg)));
  cfg["ckpt"] = "MODEL_WEIGHT";  // the shipped eval yaml's placeholder: was read last, after the LLaMA
  CHECK_THROWS_WITH(build_chatbridge(model_section(cfg)),
                    Catch::Contains("model.ckpt: MODEL_WEIGHT, set in test (line 1), does not exist") &&
                        Catch::Contains("--options model.ckpt=PATH"));
  cfg = f.config();
  cfg["tiny_dims"].erase("llama_config");  // the LLaMA comes from llama_model now
  cfg["llama_model"] = "/PATH/TO/vicuna-13b";
  CHECK_THROWS_WITH(
      build_chatbridge(model_section(cfg)),
      Catch::Contains(
          "model.llama_model: /PATH/TO/vicuna-13b, set in test (line 1), is not a folder"));  // was the tokenizer's
}
