// Reading torch.save files without Python: the zip format (PyTorch >= 1.6: `<prefix>/data.pkl` plus
// one `<prefix>/data/<key>` record per storage) and the legacy format (five pickles - magic number,
// protocol, sys info, object, storage keys - then each storage as an 8-byte element count and its
// raw bytes). Tensors are rebuilt as PyTorch does: one storage per key, shared by every tensor that
// uses it, each tensor a (storage offset, sizes, strides) view of it. Storages view the memory-mapped
// file (read-only) when suitably aligned, else they are copied once.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "framework/checkpoint/mapped_file.h"
#include "framework/checkpoint/pickle.h"

namespace cb {

struct TorchObject {
  std::shared_ptr<pickle::Arena> arena;  // owns every value below root
  const pickle::Value* root = nullptr;
  std::string format;  // "torch-zip" or "torch-legacy"
};

// Loads a torch.save file of either format; throws cb::Error naming the file and the problem.
TorchObject torch_load(const std::filesystem::path& path);
TorchObject torch_load(std::shared_ptr<const MappedFile> file);

// Every tensor in the tree under `root`, depth-first in pickle order, with its path: dict keys and
// list/tuple indices joined by '/'. Throws on trees nested deeper than 1000 levels (or cyclic).
std::vector<std::pair<std::string, torch::Tensor>> tensors_in(const pickle::Value* root);

bool looks_like_legacy_torch(const uint8_t* data, size_t size);  // starts with the legacy magic-number pickle

// A storage by key: a flat 1-d tensor of `numel` elements of `dtype`. Returning an undefined tensor
// means "metadata only": tensors over it are left undefined (legacy files are read in two passes).
using StorageSource = std::function<torch::Tensor(const std::string& key, torch::ScalarType dtype, int64_t numel)>;

// Unpickles one torch object stream from data[pos...] (advancing pos), rebuilding tensors and
// Parameters over the storages `source` supplies (each key is asked for once).
pickle::Value* unpickle_torch(pickle::Arena& arena, const uint8_t* data, size_t size, size_t& pos,
                              const std::string& label, const StorageSource& source);

}  // namespace cb
