// `llama_causal_lm`: a LLaMA trained as a causal language model (task lm_pretrain) — stage 0 of the
// tiny main job, which gives ChatBridge's frozen LLaMA the text knowledge a real Vicuna brings.
//
//   model:
//     arch: llama_causal_lm
//     model_type: fresh         (models/configs/llama_causal_lm.yaml)
//     llama_config: {...}       Hugging Face config.json keys; fresh weights as HF's _init_weights
//                               (N(0, initializer_range) for every Linear and Embedding weight)
//     llama_model: DIR          or: continue from a Hugging Face directory
//     llama_tokenizer: PATH     tokenizer.model (or a folder with it); default llama_model
//     max_txt_len: 128          texts are truncated to this many tokens (bos included)
//
// Every parameter trains. The result is exported as a Hugging Face directory (save_llama_hf), which
// ChatBridge's `model.llama_model` and load_llama_hf read.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>

#include "framework/config.h"
#include "models/llama.h"

namespace cb {

LlamaForCausalLM build_llama_causal_lm(const Config& model_cfg);

// config.json of transformers 4.28's LlamaConfig for `c` (architectures, model_type, torch_dtype).
nlohmann::json llama_hf_config_json(const LlamaConfig& c, torch::Dtype dtype);

// <dir>/config.json, model.safetensors (the full state dict under HF names) and tokenizer.model
// (copied from `tokenizer`, a file or a folder holding one); each file written atomically.
void save_llama_hf(const LlamaForCausalLMImpl& model, const std::filesystem::path& tokenizer,
                   const std::filesystem::path& dir);

}  // namespace cb
