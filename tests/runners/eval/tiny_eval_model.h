// The model of the chatbridge-eval tests: the golden chatbridge_stage2 case's tiny ChatBridge (its
// config and weights, saved as a checkpoint directory), described by a model yaml for --model-cfg.
// Predictions are noise but deterministic.
#pragma once
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "framework/checkpoint/safetensors.h"
#include "tests/support/golden.h"

namespace cb::test {

// Writes <dir>/ckpt/model.safetensors and <dir>/model.yaml; returns the yaml's path.
inline std::filesystem::path write_tiny_eval_model(const std::filesystem::path& dir) {
  Fixture f("chatbridge_stage2");
  std::filesystem::create_directories(dir / "ckpt");
  save_safetensors(dir / "ckpt" / "model.safetensors", f.weights());
  auto model = f.config();
  model["llama_tokenizer"] = golden_tokenizer().string();
  model["vit_precision"] = "fp32";
  model["ckpt"] = (dir / "ckpt").string();
  const auto yaml = dir / "model.yaml";
  std::ofstream(yaml) << nlohmann::json{{"model", model}, {"run", {{"task", "tri_pretrain"}}}}.dump(1);
  return yaml;
}

// The image size of that model (its processors must give it).
inline int64_t tiny_eval_image_size() { return Fixture("chatbridge_stage2").config().at("image_size").get<int64_t>(); }

}  // namespace cb::test
