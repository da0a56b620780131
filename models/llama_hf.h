// Loading a Hugging Face LLaMA/Vicuna directory into LlamaForCausalLM.
#pragma once
#include <filesystem>
#include <optional>

#include "models/llama.h"

namespace cb {

// config.json + model.safetensors / pytorch_model.bin (sharded or not, with their index). Weights are
// converted to `dtype` (default: the checkpoint's own dtype); the model is built directly in that dtype.
// The `rotary_emb.inv_freq` buffers may be absent (newer exports); any other missing or unexpected
// key is an error. The model is returned in eval mode with gradients off.
LlamaForCausalLM load_llama_hf(const std::filesystem::path& dir, std::optional<torch::Dtype> dtype = std::nullopt);

}  // namespace cb
