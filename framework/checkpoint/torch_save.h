// Writing torch.save files that PyTorch (>= 1.6) loads with torch.load: the zip format
//   <archive>/data.pkl      the object, pickle protocol 2; each tensor is
//                           torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())
//                           with the storage a persistent id ('storage', torch.<T>Storage, key, 'cpu', numel)
//   <archive>/data/<key>    each storage's raw little-endian bytes (keys "0", "1", ... in pickle order)
//   <archive>/version       "3"
// The object is a tree of the reader's values (framework/checkpoint/pickle.h), built with TreeBuilder,
// so what is written and what torch_load reads back compare value by value. Every tensor gets a
// storage of its own (contiguous, on the CPU); Bytes, Global and Storage values cannot be written.
//
//   pickle::Arena arena;
//   TreeBuilder t(arena);
//   auto* root = t.dict();
//   t.set(root, "model", t.state_dict(sd));
//   t.set(root, "epoch", t.integer(3));
//   torch_save(*root, "checkpoint_3.pth");
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "framework/checkpoint/pickle.h"
#include "framework/checkpoint/state_dict.h"

namespace cb {

// Makes values in `arena` (which owns them).
class TreeBuilder {
 public:
  explicit TreeBuilder(pickle::Arena& arena) : arena_(arena) {}
  pickle::Value* none();
  pickle::Value* boolean(bool b);
  pickle::Value* integer(int64_t i);
  pickle::Value* real(double f);
  pickle::Value* str(std::string s);
  pickle::Value* tensor(torch::Tensor t);
  pickle::Value* tuple(std::vector<pickle::Value*> items);
  pickle::Value* list(std::vector<pickle::Value*> items);
  pickle::Value* dict(bool ordered = false);  // ordered: a collections.OrderedDict
  // dict[key] = value (str or int keys); returns dict.
  pickle::Value* set(pickle::Value* dict, pickle::Value* key, pickle::Value* value);
  pickle::Value* set(pickle::Value* dict, const std::string& key, pickle::Value* value);
  // JSON as Python's json.loads gives it: objects -> dicts, arrays -> lists.
  pickle::Value* json(const nlohmann::ordered_json& j);
  // A state dict: an OrderedDict of name -> tensor.
  pickle::Value* state_dict(const StateDict& sd);

 private:
  pickle::Arena& arena_;
};

// Writes `root` as a torch.save zip file at `path` (atomically); `archive` is the top-level folder
// (torch.save uses the file name without extension; torch.load accepts any).
void torch_save(const pickle::Value& root, const std::filesystem::path& path, const std::string& archive = "archive");

}  // namespace cb
