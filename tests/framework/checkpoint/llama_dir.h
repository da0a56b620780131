// A LLaMA-shaped Hugging Face directory of random weights for the --quantize tests: config.json, a
// tokenizer file, one safetensors shard per decoder layer (the first also holds embed_tokens, the
// last norm and lm_head) and the index.
#pragma once
#include <torch/torch.h>

#include <filesystem>

namespace cb::test {

struct LlamaDirShape {
  int64_t hidden = 64, intermediate = 128, vocab = 96, layers = 2;
  torch::Dtype dtype = torch::kFloat;
};

void write_llama_dir(const std::filesystem::path& dir, const LlamaDirShape& s);

}  // namespace cb::test
