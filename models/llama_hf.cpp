#include "models/llama_hf.h"

#include <spdlog/spdlog.h>

#include <set>

#include "framework/checkpoint/load.h"
#include "framework/error.h"
#include "framework/json_file.h"

namespace cb {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// config.json's torch_dtype as a precision name; fp32 when absent.
std::string checkpoint_precision(const std::filesystem::path& dir) {
  const auto j = read_json_file(dir / "config.json", "LLaMA config");
  const std::string dtype = j.is_object() && j.contains("torch_dtype") && j["torch_dtype"].is_string()
                                ? j["torch_dtype"].get<std::string>()
                                : "float32";
  if (dtype == "float16") return "fp16";
  if (dtype == "bfloat16") return "bf16";
  if (dtype == "float32") return "fp32";
  fail("{}: torch_dtype '{}' is not float32, float16 or bfloat16", (dir / "config.json").string(), dtype);
}

}  // namespace

LoadReport load_llama_weights(LlamaForCausalLMImpl& model, const std::filesystem::path& dir) {
  std::set<std::string> names, seen;
  for (const auto& kv : module_state_dict(model)) names.insert(kv.key());
  LoadReport report;
  for_each_hf_shard(dir, [&](const StateDict& shard, const std::filesystem::path& file) {
    StateDict known;
    for (const auto& kv : shard) {
      if (!names.count(kv.key())) {
        report.unexpected.push_back(kv.key());
        continue;
      }
      known.insert(kv.key(), kv.value());
      seen.insert(kv.key());
    }
    report.loaded += load_state_dict_into_frozen(model, known, /*strict=*/false, file.string()).loaded;
    spdlog::debug("{}: {} tensors loaded", file.string(), known.size());
  });
  for (const auto& k : names)  // inv_freq buffers are recomputed; newer exports drop them
    if (!seen.count(k) && !ends_with(k, ".rotary_emb.inv_freq")) report.missing.push_back(k);
  return report;
}

LlamaForCausalLM load_llama_hf(const std::filesystem::path& dir, std::optional<std::string> precision,
                               bool map_packed) {
  auto config = LlamaConfig::from_file(dir / "config.json");
  auto storage = LlamaStorage::from_precision(precision.value_or(checkpoint_precision(dir)), /*init=*/false);
  storage.map_packed = map_packed;
  LlamaForCausalLM model(config, storage);
  auto report = load_llama_weights(*model, dir);
  if (!report.missing.empty() || !report.unexpected.empty())
    fail("{}: checkpoint does not match the LLaMA config: missing [{}], unexpected [{}]", dir.string(),
         fmt::join(report.missing, ", "), fmt::join(report.unexpected, ", "));
  model->eval();
  for (auto& p : model->parameters()) p.requires_grad_(false);
  spdlog::info("LLaMA from {}: {} layers, hidden {}, heads {}/{}, vocab {}, {} tensors, weights {}", dir.string(),
               config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.num_key_value_heads,
               config.vocab_size, report.loaded, kernels::weight_format_name(storage.linear));
  return model;
}

}  // namespace cb
