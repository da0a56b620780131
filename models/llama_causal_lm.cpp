#include "models/llama_causal_lm.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>

#include "framework/checkpoint/atomic_file.h"
#include "framework/checkpoint/safetensors.h"
#include "framework/checkpoint/state_dict.h"
#include "framework/error.h"
#include "framework/meta_device.h"
#include "models/llama_hf.h"
#include "models/model_factory.h"

namespace cb {
namespace {

// transformers' LlamaPreTrainedModel._init_weights: every Linear/Embedding weight ~ N(0, std), the
// padding row of the embedding zeroed; RMSNorm weights stay 1.
void init_hf_weights(LlamaForCausalLMImpl& m, double std) {
  torch::NoGradGuard no_grad;
  for (auto& module : m.modules(/*include_self=*/false)) {
    if (auto* lin = module->as<FrozenLinear>()) lin->weight.normal_(0.0, std);
    if (auto* emb = module->as<torch::nn::Embedding>()) emb->weight.normal_(0.0, std);
  }
  if (auto pad = m.config().pad_token_id; pad && *pad >= 0 && *pad < m.config().vocab_size)
    m.model->embed_tokens->weight[*pad].zero_();
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail("cannot read {}", p.string());
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Fresh weights (`llama_config`) or a Hugging Face folder (`llama_model`): exactly one is given.
bool fresh_weights(const Config& m) {
  if (m.has("llama_config") && m.has("llama_model"))
    fail("model.llama_config and model.llama_model: give one (fresh weights or a folder)");
  if (!m.has("llama_config") && !m.has("llama_model"))
    fail("model.llama_config or model.llama_model: the LLaMA to train is not described");
  return m.has("llama_config");
}

nlohmann::json fresh_config_json(const Config& m) {
  return nlohmann::json::parse(m.sub("llama_config").to_json().dump());
}

// Stage 0 trains every parameter.
LlamaForCausalLM all_trainable(LlamaForCausalLM model) {
  for (auto& p : model->parameters()) p.requires_grad_(true);
  model->train();
  return model;
}

LlamaForCausalLM llama_causal_lm_skeleton(const Config& m) {
  const auto c = fresh_weights(m)
                     ? LlamaConfig::from_json(fresh_config_json(m), "model.llama_config")
                     : LlamaConfig::from_file(std::filesystem::path(m.get<std::string>("llama_model")) / "config.json");
  return all_trainable(on_meta_device([&] { return LlamaForCausalLM(c); }));
}

}  // namespace

LlamaForCausalLM build_llama_causal_lm(const Config& m) {
  if (!fresh_weights(m)) return all_trainable(load_llama_hf(m.get<std::string>("llama_model"), "fp32"));
  const auto j = fresh_config_json(m);
  LlamaForCausalLM model(LlamaConfig::from_json(j, "model.llama_config"));
  init_hf_weights(*model, j.value("initializer_range", 0.02));
  return all_trainable(model);
}

nlohmann::json llama_hf_config_json(const LlamaConfig& c, torch::Dtype dtype) {
  auto id = [](const std::optional<int64_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"vocab_size", c.vocab_size},
          {"hidden_size", c.hidden_size},
          {"intermediate_size", c.intermediate_size},
          {"num_hidden_layers", c.num_hidden_layers},
          {"num_attention_heads", c.num_attention_heads},
          {"num_key_value_heads", c.num_key_value_heads},
          {"hidden_act", "silu"},
          {"max_position_embeddings", c.max_position_embeddings},
          {"rms_norm_eps", c.rms_norm_eps},
          {"rope_theta", c.rope_theta},
          {"pad_token_id", id(c.pad_token_id)},
          {"bos_token_id", id(c.bos_token_id)},
          {"eos_token_id", id(c.eos_token_id)},
          {"tie_word_embeddings", false},
          {"torch_dtype", dtype == torch::kFloat16    ? "float16"
                          : dtype == torch::kBFloat16 ? "bfloat16"
                                                      : "float32"},
          {"use_cache", true}};
}

void save_llama_hf(const LlamaForCausalLMImpl& model, const std::filesystem::path& tokenizer,
                   const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("{}: cannot create the directory: {}", dir.string(), ec.message());
  const auto tok = std::filesystem::is_directory(tokenizer) ? tokenizer / "tokenizer.model" : tokenizer;
  StateDict sd;
  for (const auto& item : module_state_dict(model)) sd.insert(item.key(), item.value().detach().to(torch::kCPU));
  save_safetensors(dir / "model.safetensors", sd, {{"format", "pt"}});
  atomic_write_file(dir / "tokenizer.model", read_file(tok));
  atomic_write_file(
      dir / "config.json",
      llama_hf_config_json(model.config(), model.model->embed_tokens->weight.scalar_type()).dump(2) + "\n");
  spdlog::info("LLaMA exported as a Hugging Face directory: {}", dir.string());
}

CB_REGISTER(model, "llama_causal_lm",
            ModelFactory{.build = [](const Config& m) -> std::shared_ptr<torch::nn::Module> {
                           return build_llama_causal_lm(m).ptr();
                         },
                         .skeleton = [](const Config& m) -> std::shared_ptr<torch::nn::Module> {
                           return llama_causal_lm_skeleton(m).ptr();
                         }});
CB_REGISTER_DEFAULT_CONFIG(model, "llama_causal_lm", "fresh", "models/configs/llama_causal_lm.yaml");

}  // namespace cb
