#include "tests/framework/checkpoint/llama_dir.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "framework/checkpoint/safetensors.h"

namespace cb::test {

void write_llama_dir(const std::filesystem::path& dir, const LlamaDirShape& s) {
  std::filesystem::create_directories(dir);
  const int64_t heads = s.hidden / 32;
  nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                           {"hidden_size", s.hidden},
                           {"intermediate_size", s.intermediate},
                           {"num_hidden_layers", s.layers},
                           {"num_attention_heads", heads},
                           {"vocab_size", s.vocab},
                           {"rms_norm_eps", 1e-6},
                           {"torch_dtype", s.dtype == torch::kFloat ? "float32" : "bfloat16"}};
  std::ofstream(dir / "config.json") << config.dump(2);
  std::ofstream(dir / "tokenizer.model", std::ios::binary) << "not a real sentencepiece model";
  auto rnd = [&](std::vector<int64_t> shape) { return (torch::randn(shape) * 0.02).to(s.dtype); };
  nlohmann::json weight_map = nlohmann::json::object();
  for (int64_t l = 0; l < s.layers; ++l) {
    StateDict sd;
    if (l == 0) sd.insert("model.embed_tokens.weight", rnd({s.vocab, s.hidden}));
    const auto p = "model.layers." + std::to_string(l) + ".";
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"})
      sd.insert(p + "self_attn." + proj + ".weight", rnd({s.hidden, s.hidden}));
    sd.insert(p + "self_attn.rotary_emb.inv_freq",
              1.0 / torch::pow(10000.0, torch::arange(0, 32, 2, torch::kFloat) / 32.0));
    sd.insert(p + "mlp.gate_proj.weight", rnd({s.intermediate, s.hidden}));
    sd.insert(p + "mlp.up_proj.weight", rnd({s.intermediate, s.hidden}));
    sd.insert(p + "mlp.down_proj.weight", rnd({s.hidden, s.intermediate}));
    sd.insert(p + "input_layernorm.weight", torch::ones({s.hidden}, s.dtype));
    sd.insert(p + "post_attention_layernorm.weight", torch::ones({s.hidden}, s.dtype));
    if (l == s.layers - 1) {
      sd.insert("model.norm.weight", torch::ones({s.hidden}, s.dtype));
      sd.insert("lm_head.weight", rnd({s.vocab, s.hidden}));
    }
    const auto name = "model-" + std::to_string(l + 1) + ".safetensors";
    save_safetensors(dir / name, sd, {{"format", "pt"}});
    for (const auto& kv : sd) weight_map[kv.key()] = name;
  }
  std::ofstream(dir / "model.safetensors.index.json") << nlohmann::json{{"weight_map", weight_map}}.dump(2);
}

}  // namespace cb::test
