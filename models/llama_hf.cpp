#include "models/llama_hf.h"

#include <spdlog/spdlog.h>

#include "framework/checkpoint/load.h"
#include "framework/error.h"

namespace cb {
namespace {

// Builds the model directly in `dtype` (no fp32 copy of a 13B model on the way).
struct DefaultDtypeGuard {
  explicit DefaultDtypeGuard(torch::Dtype dtype) : saved(torch::get_default_dtype()) {
    torch::set_default_dtype(caffe2::scalarTypeToTypeMeta(dtype));
  }
  ~DefaultDtypeGuard() { torch::set_default_dtype(saved); }
  caffe2::TypeMeta saved;
};

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

LlamaForCausalLM load_llama_hf(const std::filesystem::path& dir, std::optional<torch::Dtype> dtype) {
  auto config = LlamaConfig::from_file(dir / "config.json");
  auto sd = load_hf_directory(dir);
  const auto* embed = sd.find("model.embed_tokens.weight");
  if (!embed) fail("{}: no 'model.embed_tokens.weight' in the checkpoint", dir.string());
  const auto dt = dtype.value_or(embed->scalar_type());

  LlamaForCausalLM model{nullptr};
  {
    DefaultDtypeGuard guard(dt);
    model = LlamaForCausalLM(config);
  }
  auto report = load_state_dict(*model, sd, /*strict=*/false, dir.string());
  std::vector<std::string> missing;
  for (const auto& k : report.missing)
    if (!ends_with(k, ".rotary_emb.inv_freq")) missing.push_back(k);  // recomputed buffers; newer exports drop them
  if (!missing.empty() || !report.unexpected.empty())
    fail("{}: checkpoint does not match the LLaMA config: missing [{}], unexpected [{}]", dir.string(),
         fmt::join(missing, ", "), fmt::join(report.unexpected, ", "));
  model->eval();
  for (auto& p : model->parameters()) p.requires_grad_(false);
  spdlog::info("LLaMA from {}: {} layers, hidden {}, heads {}/{}, vocab {}, {} tensors, dtype {}", dir.string(),
               config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.num_key_value_heads,
               config.vocab_size, report.loaded, c10::toString(dt));
  return model;
}

}  // namespace cb
