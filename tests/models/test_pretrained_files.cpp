// The real-layout pretrained files (tests/golden/ckpt): LAVIS eva_vit_g.pth and blip2_pretrained.pth,
// found by their keys, read with the checkpoint reader and loaded into the vision modules. Dims come from the files'
// own tensors; expected values from their .expect.json descriptions.
#include <catch2/catch.hpp>

#include <map>
#include <regex>
#include <set>

#include "framework/checkpoint/load.h"
#include "models/eva_vit.h"
#include "models/qformer.h"
#include "tests/framework/checkpoint/expect.h"

namespace fs = std::filesystem;

namespace {

// path -> tensor description of an expectation (tests/framework/checkpoint/expect.h)
std::map<std::string, nlohmann::json> expected_tensors(const nlohmann::json& description) {
  std::map<std::string, nlohmann::json> out;
  for (const auto& t : description.at("tensors")) out[t.at("path").get<std::string>()] = t;
  return out;
}

// The module tensor holds the file's values (after the cast to the module's dtype).
void check_values(const torch::Tensor& t, const nlohmann::json& expect, const std::string& what) {
  INFO(what);
  auto v = t.detach().to(torch::kDouble).flatten();
  CHECK(v.sum().item<double>() == Approx(expect.at("sum").get<double>()).margin(1e-9));
  CHECK(v.pow(2).sum().item<double>() == Approx(expect.at("sumsq").get<double>()).margin(1e-9));
  const auto& first = expect.at("first");
  for (size_t i = 0; i < first.size(); ++i) CHECK(v[static_cast<int64_t>(i)].item<double>() == first[i].get<double>());
}

int64_t count_layers(const cb::StateDict& sd, const std::regex& re) {
  std::set<std::string> ids;
  std::smatch m;
  for (const auto& kv : sd)
    if (std::regex_search(kv.key(), m, re)) ids.insert(m[1]);
  return static_cast<int64_t>(ids.size());
}

}  // namespace

TEST_CASE("eva_vit_g.pth: flat fp16 state dict loads into an fp32 ViT, pos_embed interpolated to the model grid") {
  const auto files = cb::test::ckpt_expectations_with_tensor("cls_token");  // a bare EVA ViT state dict
  REQUIRE(!files.empty());
  for (const auto& description : files) {
    const fs::path path = description.at("_path").get<std::string>();
    INFO(path.string());
    auto expect = expected_tensors(description);
    auto sd = cb::load_state_dict_file(path);
    cb::EvaVitConfig c;
    c.embed_dim = sd["cls_token"].size(-1);
    c.patch_size = sd["patch_embed.proj.weight"].size(-1);
    c.depth = count_layers(sd, std::regex(R"(^blocks\.(\d+)\.)"));
    c.num_heads = 1;
    c.mlp_ratio = static_cast<double>(sd["blocks.0.mlp.fc1.weight"].size(0)) / static_cast<double>(c.embed_dim);
    const auto file_grid = static_cast<int64_t>(std::lround(std::sqrt(sd["pos_embed"].size(1) - 1)));
    c.img_size = 2 * file_grid * c.patch_size;  // another grid than the file's: exercises interpolation
    REQUIRE(c.mlp_hidden() == sd["blocks.0.mlp.fc1.weight"].size(0));

    cb::VisionTransformer vit(c);
    auto report = cb::load_eva_vit_checkpoint(vit, path);
    CHECK(report.missing.empty());
    CHECK(report.unexpected.empty());
    auto params = cb::module_state_dict(*vit);
    for (const auto& kv : params) {
      CHECK(kv.value().scalar_type() == torch::kFloat);
      if (kv.key() != "pos_embed") check_values(kv.value(), expect.at(kv.key()), kv.key());
    }
    CHECK(torch::equal(params["pos_embed"], cb::interpolate_pos_embed(sd["pos_embed"], c.grid())));
    CHECK(params["pos_embed"].size(1) == 1 + c.num_patches());
  }
}

TEST_CASE("blip2_pretrained.pth: the Q-Former loads from the `model` entry, text-branch keys ignored") {
  const auto files = cb::test::ckpt_expectations_with_tensor("model/query_tokens");  // LAVIS BLIP-2 layout
  REQUIRE(!files.empty());
  for (const auto& description : files) {
    const fs::path path = description.at("_path").get<std::string>();
    INFO(path.string());
    auto expect = expected_tensors(description);
    auto sd = cb::read_blip2_checkpoint(path);
    cb::BertConfig c;
    const auto& query = sd["Qformer.bert.encoder.layer.0.attention.self.query.weight"];
    c.hidden_size = query.size(0);
    c.num_attention_heads = 1;
    c.num_hidden_layers = count_layers(sd, std::regex(R"(^Qformer\.bert\.encoder\.layer\.(\d+)\.)"));
    c.intermediate_size = sd["Qformer.bert.encoder.layer.0.intermediate_query.dense.weight"].size(0);
    c.max_position_embeddings = sd["Qformer.bert.embeddings.position_ids"].size(1);
    c.encoder_width = sd["Qformer.bert.encoder.layer.0.crossattention.self.key.weight"].size(1);
    // Cross-attention sits in layers 0, freq, 2*freq, ...: freq is the second such layer's index.
    c.cross_attention_freq = c.num_hidden_layers;
    for (int64_t i = c.num_hidden_layers - 1; i > 0; --i)
      if (sd.contains("Qformer.bert.encoder.layer." + std::to_string(i) + ".crossattention.self.key.weight"))
        c.cross_attention_freq = i;
    c.query_length = sd["query_tokens"].size(1);

    cb::Qformer q(c);
    auto report = cb::load_qformer_state_dict(q, sd, path.filename().string());
    CHECK(report.missing.empty());
    REQUIRE_FALSE(report.unexpected.empty());
    const std::regex pruned(
        R"(^(cls\.|bert\.embeddings\.(word|position)_embeddings\.|bert\.encoder\.layer\.\d+\.(intermediate|output)\.))");
    for (const auto& k : report.unexpected) CHECK(std::regex_search(k, pruned));
    for (const auto& kv : cb::module_state_dict(*q, "Qformer."))
      check_values(kv.value(), expect.at("model/" + kv.key()), kv.key());

    auto mapped = cb::blip2_to_chatbridge_keys(sd);
    check_values(mapped["image_query_tokens"], expect.at("model/query_tokens"), "image_query_tokens");
    CHECK(mapped.contains("ln_vision.weight"));
  }
}
