// Builds the ChatBridge a golden case describes (its config + tiny_dims, the fixture tokenizer) and
// loads the case's weights strictly, and turns a case's `input.<batch>.*` tensors into a batch.
#pragma once
#include "framework/checkpoint/state_dict.h"
#include "models/chatbridge.h"
#include "tests/support/golden.h"

namespace cb::test {

inline ChatBridge chatbridge_from_fixture(const Fixture& f, const nlohmann::json& model_config) {
  auto cfg = ChatBridgeConfig::from_json(model_config, f.name());
  ChatBridge model(cfg, LlamaTokenizer::load(golden_tokenizer()));
  load_state_dict(*model, f.weights(), /*strict=*/true, f.name());
  return model;
}

inline Batch batch_from_fixture(const Fixture& f, const std::string& name, const std::string& task) {
  Batch b;
  b.task = task;
  auto in = "input." + name + ".";
  if (f.has(in + "image")) b.image = f.get(in + "image");
  if (f.has(in + "audio")) b.audio = f.get(in + "audio");
  if (f.has(in + "text_input_utf8")) b.text_input = f.strings(in + "text_input");
  if (f.has(in + "conversation_utf8")) b.conversation = f.strings(in + "conversation");
  return b;
}

}  // namespace cb::test
