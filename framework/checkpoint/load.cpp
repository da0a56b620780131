#include "framework/checkpoint/load.h"

#include <spdlog/spdlog.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "framework/checkpoint/safetensors.h"
#include "framework/checkpoint/torch_load.h"
#include "framework/checkpoint/zip_reader.h"
#include "framework/error.h"
#include "framework/json_file.h"

namespace cb {
namespace {

using pickle::Kind;
using pickle::Value;

bool is_state_dict(const Value* v) {
  if (!v || !v->is_dict()) return false;
  for (const auto& [k, x] : v->entries)
    if (k->kind != Kind::Str || x->kind != Kind::Tensor) return false;
  return true;
}

StateDict to_state_dict(const TorchObject& obj, const std::string& entry, const std::string& label) {
  const Value* node = obj.root;
  if (!entry.empty()) {
    node = obj.root->get(entry);
    if (!node) fail("{}: the checkpoint has no entry '{}'", label, entry);
  }
  if (!is_state_dict(node)) {
    std::vector<std::string> candidates;
    if (obj.root->is_dict())
      for (const auto& [k, x] : obj.root->entries)
        if (k->kind == Kind::Str && is_state_dict(x)) candidates.push_back(k->s);
    fail("{}: {} is a {} but not a state dict (str -> tensor){}", label,
         entry.empty() ? std::string("the checkpoint root") : "entry '" + entry + "'", kind_name(node->kind),
         candidates.empty() ? std::string() : fmt::format("; state dicts inside it: {}", fmt::join(candidates, ", ")));
  }
  StateDict sd;
  for (const auto& [k, x] : node->entries) sd.insert(k->s, x->tensor.detach());
  return sd;
}

// Calls fn with each shard an index names (its listed tensors only), one shard loaded at a time.
void for_each_indexed_shard(const std::filesystem::path& index_path,
                            const std::function<void(const StateDict&, const std::filesystem::path&)>& fn) {
  const std::string label = index_path.string();
  auto index = read_json_file(index_path, "sharded checkpoint index");
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    fail("{}: no weight_map object", label);
  std::map<std::string, std::vector<std::string>> by_shard;  // shard file -> its keys
  for (const auto& [key, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) fail("{}: weight_map entry '{}' is not a file name", label, key);
    auto name = shard.get<std::string>();
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      fail("{}: weight_map entry '{}' names '{}', which is not a file in this directory", label, key, name);
    by_shard[name].push_back(key);
  }
  uint64_t total_bytes = 0;
  for (const auto& [name, keys] : by_shard) {
    const auto shard_path = index_path.parent_path() / name;
    if (!std::filesystem::exists(shard_path)) fail("{}: shard '{}' is missing", label, shard_path.string());
    StateDict listed;
    {
      StateDict shard = load_state_dict_file(shard_path);
      std::set<std::string> wanted(keys.begin(), keys.end());
      for (const auto& key : keys)
        if (!shard.contains(key)) fail("{}: the index puts '{}' in {}, which has no such tensor", label, key, name);
      for (const auto& kv : shard) {
        if (!wanted.count(kv.key())) {
          spdlog::warn("{}: {} holds '{}', which the index does not list; ignored", label, name, kv.key());
          continue;
        }
        total_bytes += kv.value().numel() * kv.value().element_size();
        listed.insert(kv.key(), kv.value());
      }
    }
    fn(listed, shard_path);
  }
  if (index.contains("metadata") && index["metadata"].is_object() && index["metadata"].contains("total_size") &&
      index["metadata"]["total_size"].is_number_unsigned() &&
      index["metadata"]["total_size"].get<uint64_t>() != total_bytes)
    spdlog::warn("{}: metadata.total_size is {} but the tensors hold {} bytes", label,
                 index["metadata"]["total_size"].get<uint64_t>(), total_bytes);
}

}  // namespace

StateDict load_state_dict_file(const std::filesystem::path& path, const std::string& entry) {
  const std::string label = path.string();
  auto file = MappedFile::open(path);
  const uint8_t* d = file->data();
  const size_t n = file->size();
  if (looks_like_zip(d, n) || looks_like_legacy_torch(d, n)) return to_state_dict(torch_load(file), entry, label);
  if (n >= 9 && d[8] == '{') {
    if (!entry.empty()) fail("{}: a safetensors file has no entry '{}' (it holds one flat state dict)", label, entry);
    return SafetensorsFile(path).tensors();
  }
  fail("{}: unrecognised checkpoint format (neither safetensors nor a torch.save zip or legacy file)", label);
}

void for_each_hf_shard(const std::filesystem::path& dir,
                       const std::function<void(const StateDict&, const std::filesystem::path&)>& fn) {
  if (!std::filesystem::is_directory(dir)) fail("{}: not a directory", dir.string());
  // The order Hugging Face prefers: safetensors before .bin, an index before a single file.
  for (const char* index :
       {"model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json", "pytorch_model.bin"}) {
    const auto path = dir / index;
    if (!std::filesystem::exists(path)) continue;
    if (path.extension() == ".json") return for_each_indexed_shard(path, fn);
    return fn(load_state_dict_file(path), path);
  }
  fail("{}: no model.safetensors(.index.json) or pytorch_model.bin(.index.json) in this directory", dir.string());
}

StateDict load_hf_directory(const std::filesystem::path& dir) {
  StateDict sd;
  for_each_hf_shard(dir, [&](const StateDict& shard, const std::filesystem::path&) {
    for (const auto& kv : shard) sd.insert(kv.key(), kv.value());
  });
  return sd;
}

}  // namespace cb
