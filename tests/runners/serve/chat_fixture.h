// The tiny ChatBridge of the chat tests: the golden chatbridge_stage2 case's config (tiny_dims) and
// tokenizer, built through a yaml written at test time (what `chatbridge-chat --cfg-path` reads),
// then given the case's weights.
#pragma once
#include <filesystem>
#include <fstream>

#include "framework/checkpoint/state_dict.h"
#include "framework/config.h"
#include "models/chatbridge.h"
#include "tests/support/golden.h"

namespace cb::test {

inline nlohmann::json tiny_chat_model_json() {
  Fixture f("chatbridge_stage2");
  auto cfg = f.config();
  cfg["llama_tokenizer"] = golden_tokenizer().string();
  cfg["vit_precision"] = "fp32";
  cfg["ckpt"] = "None";
  return cfg;
}

// Writes <dir>/tiny_chat.yaml (JSON is YAML) and returns its path.
inline std::filesystem::path write_tiny_chat_yaml(const std::filesystem::path& dir) {
  const auto path = dir / "tiny_chat.yaml";
  std::ofstream(path) << nlohmann::json{{"model", tiny_chat_model_json()}, {"run", {{"task", "tri_pretrain"}}}}.dump(1);
  return path;
}

inline ChatBridge tiny_chat_model(const std::filesystem::path& dir) {
  auto model = build_chatbridge(resolve_config(write_tiny_chat_yaml(dir), {}).sub("model"));
  Fixture f("chatbridge_stage2");
  load_state_dict(*model, f.weights(), /*strict=*/true, f.name());
  model->eval();
  return model;
}

}  // namespace cb::test
