// Writing state dicts as safetensors laid out like Hugging Face checkpoints: one file, or shards
// `model-0000i-of-0000n.safetensors` plus `model.safetensors.index.json` (metadata.total_size and a
// sorted weight_map). Every file is written atomically.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "framework/checkpoint/state_dict.h"

namespace cb {

// "5GB" -> 5'000'000'000 (decimal units as Hugging Face uses them), "2GiB" -> 2^31, "123" -> 123 bytes.
uint64_t parse_byte_size(const std::string& text);

// Writes `sd` into directory `dir`: `model.safetensors` when it fits in one shard of
// `max_shard_bytes` (0 = no limit), else shards + index. Returns the files written.
std::vector<std::filesystem::path> save_safetensors_sharded(const StateDict& sd, const std::filesystem::path& dir,
                                                            uint64_t max_shard_bytes);

}  // namespace cb
