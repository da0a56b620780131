// Writing state dicts as safetensors laid out like Hugging Face checkpoints: one file, or shards
// `model-0000i-of-0000n.safetensors` plus `model.safetensors.index.json` (metadata.total_size and a
// sorted weight_map). Every file is written atomically.
//
// And `chatbridge-convert --quantize`: a Hugging Face LLaMA directory rewritten with its linear
// layers packed (q8_0, q4_0) or everything 16-bit (bf16, fp16), streamed one input shard and one
// tensor at a time (docs/checkpoints.md, "Quantized and 16-bit LLaMA directories").
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "framework/checkpoint/safetensors.h"
#include "framework/checkpoint/state_dict.h"
#include "framework/kernels/weight_format.h"

namespace cb {

// "5GB" -> 5'000'000'000 (decimal units as Hugging Face uses them), "2GiB" -> 2^31, "123" -> 123 bytes.
uint64_t parse_byte_size(const std::string& text);
// The other way, for logs: "7.32 GB", "1.5 MB", "12.0 KB", "123 B".
std::string format_byte_size(uint64_t bytes);

// A checkpoint file (load_state_dict_file) or HF directory (load_hf_directory) and the packed-weight
// tags of its safetensors files, which a conversion writes again.
struct TaggedStateDict {
  StateDict tensors;
  PackedTags packed;
};
TaggedStateDict load_with_packed_tags(const std::filesystem::path& input, const std::string& entry = "");

// Writes `sd` into directory `dir`: `model.safetensors` when it fits in one shard of
// `max_shard_bytes` (0 = no limit), else shards + index, the `packed` tensors tagged in their shard.
// Returns the files written.
std::vector<std::filesystem::path> save_safetensors_sharded(const StateDict& sd, const std::filesystem::path& dir,
                                                            uint64_t max_shard_bytes, const PackedTags& packed = {});

// Copies the HF directory `in`'s files that are neither weights nor their index (config.json,
// tokenizer, generation config) into `out`, replacing files of the same name.
void copy_non_weight_files(const std::filesystem::path& in, const std::filesystem::path& out);

// The LLaMA weights --quantize packs: the q/k/v/o, gate/up/down projections and lm_head.
bool is_llama_linear_weight(const std::string& name);

struct QuantizeReport {
  size_t shards = 0, packed = 0, kept = 0;  // files written; tensors packed; tensors stored dense
  uint64_t bytes_in = 0, bytes_out = 0;     // tensor data read and written
};

// Rewrites the HF LLaMA directory `in` (fp32/fp16/bf16; safetensors or .bin; sharded or not; an
// already quantized one is refused) into `out` (created; must be empty; on failure what this call
// wrote is removed): the linear weights in `format`, the other floating tensors in
// `format`'s dtype for bf16/fp16 and in fp16 for q8_0/q4_0 (inv_freq buffers as they are); output
// shard i holds input shard i's tensors (one file: model.safetensors, else shards + index).
// config.json gets torch_dtype (the dense tensors' dtype) and, for q8_0/q4_0, quantization_config
// {"quant_method": "chatbridge", "weight_format": ...}; the other non-weight files (tokenizer,
// generation config) are copied. Holds one input shard's tensors (mapped) and one converted tensor.
QuantizeReport quantize_hf_directory(const std::filesystem::path& in, const std::filesystem::path& out,
                                     kernels::WeightFormat format);

// The packed format an HF directory's config.json declares (quantization_config.weight_format of a
// directory quantize_hf_directory wrote); nullopt when it declares none.
std::optional<kernels::WeightFormat> hf_weight_format(const std::filesystem::path& dir);

}  // namespace cb
