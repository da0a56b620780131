// Loading a Hugging Face LLaMA/Vicuna directory (config.json + model.safetensors / pytorch_model.bin,
// sharded or not, with their index) into LlamaForCausalLM, one shard at a time: each shard's tensors
// are cast or packed into the model's storage and the shard is released before the next is read, so
// the peak is the model's own bytes plus one slice of rows (copied slices of a mapped shard give their
// pages back). Quantized tensors stored packed in the file's format are copied in, or used from the
// file's mapping on request.
#pragma once
#include <filesystem>
#include <optional>
#include <string>

#include "framework/checkpoint/state_dict.h"
#include "models/llama.h"

namespace cb {

// Builds the model directly in `precision`'s storage (fp32, bf16, fp16, q8_0, q4_0; default: the
// checkpoint's torch_dtype from config.json, fp32 when absent) and loads it. The `rotary_emb.inv_freq`
// buffers may be absent (newer exports); any other missing or unexpected key is an error. Returned
// in eval mode with gradients off. `map_packed`: packed weights stored in `precision`'s format are used
// from the file's mapping instead of copied (LlamaStorage::map_packed).
LlamaForCausalLM load_llama_hf(const std::filesystem::path& dir, std::optional<std::string> precision = std::nullopt,
                               bool map_packed = false);

// The weights of `dir` into an existing model, shard by shard (load_state_dict_into_frozen per shard).
// `missing` leaves out the recomputed inv_freq buffers.
LoadReport load_llama_weights(LlamaForCausalLMImpl& model, const std::filesystem::path& dir);

}  // namespace cb
