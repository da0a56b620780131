#include "framework/checkpoint/convert.h"

#include <cctype>
#include <nlohmann/json.hpp>

#include "framework/checkpoint/atomic_file.h"
#include "framework/checkpoint/safetensors.h"
#include "framework/error.h"

namespace cb {

uint64_t parse_byte_size(const std::string& text) {
  size_t end = 0;
  while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
  if (end == 0 || end > 15) fail("'{}' is not a byte size (e.g. 5GB, 500MB, 2GiB)", text);
  const uint64_t n = std::stoull(text.substr(0, end));
  std::string unit;
  for (char c : text.substr(end)) unit += char(std::toupper(static_cast<unsigned char>(c)));
  const std::pair<const char*, uint64_t> units[] = {{"", 1},
                                                    {"B", 1},
                                                    {"KB", 1000},
                                                    {"MB", 1000000},
                                                    {"GB", 1000000000},
                                                    {"KIB", 1ull << 10},
                                                    {"MIB", 1ull << 20},
                                                    {"GIB", 1ull << 30}};
  for (const auto& [name, scale] : units)
    if (unit == name) return n * scale;
  fail("'{}' is not a byte size: unknown unit '{}' (use B, KB, MB, GB, KiB, MiB or GiB)", text, text.substr(end));
}

std::vector<std::filesystem::path> save_safetensors_sharded(const StateDict& sd, const std::filesystem::path& dir,
                                                            uint64_t max_shard_bytes) {
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  // Greedy in state-dict order, as transformers' shard_checkpoint: a tensor larger than the limit
  // gets a shard of its own.
  std::vector<StateDict> shards(1);
  uint64_t current = 0, total = 0;
  for (const auto& kv : sd) {
    const uint64_t bytes = kv.value().numel() * kv.value().element_size();
    if (max_shard_bytes && current + bytes > max_shard_bytes && !shards.back().is_empty()) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().insert(kv.key(), kv.value());
    current += bytes;
    total += bytes;
  }
  if (shards.size() == 1) {
    save_safetensors(dir / "model.safetensors", sd, metadata);
    return {dir / "model.safetensors"};
  }
  std::vector<std::filesystem::path> written;
  nlohmann::json weight_map = nlohmann::json::object();  // sorted keys, as Hugging Face writes it
  for (size_t i = 0; i < shards.size(); ++i) {
    auto name = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
    save_safetensors(dir / name, shards[i], metadata);
    for (const auto& kv : shards[i]) weight_map[kv.key()] = name;
    written.push_back(dir / name);
  }
  nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  atomic_write_file(dir / "model.safetensors.index.json", index.dump(2) + "\n");
  written.push_back(dir / "model.safetensors.index.json");
  return written;
}

}  // namespace cb
