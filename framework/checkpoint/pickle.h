// A restricted unpickler for the objects torch.save writes (pickle protocols 2-4): it builds a tree of
// plain values (None, bool, int, float, str, bytes, list, tuple, dict/OrderedDict) and leaves
// everything torch-specific - persistent ids (storages) and calls of torch globals - to hooks.
// Only an allow-list of globals is accepted; any other global or opcode is an error naming it.
//
// Values live in an Arena; they refer to each other by pointer, so shared objects
// (pickle memo) stay one object, and cycles or deep nesting cannot blow up destruction.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cb::pickle {

enum class Kind { None, Bool, Int, BigInt, Float, Str, Bytes, List, Tuple, Dict, Global, Storage, Tensor };

struct Value {
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                                   // Str, Bytes, Global ("module.name"), BigInt (LE two's complement)
  std::vector<Value*> items;                       // List, Tuple
  std::vector<std::pair<Value*, Value*>> entries;  // Dict, in insertion order
  std::unordered_map<std::string, size_t> index;   // Dict: hashable key -> position in entries
  bool ordered = false;                            // Dict built as collections.OrderedDict
  Value* state = nullptr;                          // what BUILD set (e.g. a state dict's _metadata), else null
  torch::Tensor tensor;                            // Tensor; Storage: a flat 1-d tensor over the whole storage
  bool is_parameter = false;                       // Tensor rebuilt as torch.nn.Parameter

  bool is_dict() const { return kind == Kind::Dict; }
  const Value* get(const std::string& key) const;  // Dict entry with that str key, or null
};

const char* kind_name(Kind k);

// Callbacks into the owner of the stream (torch_load). Each returns a value allocated with
// Arena::make or throws cb::Error.
struct Hooks {
  std::function<Value*(const Value& pid)> persistent_load;  // BINPERSID / PERSID
  // REDUCE of an allowed torch global (not OrderedDict / torch.Size, which the unpickler builds itself).
  std::function<Value*(const std::string& global, const Value& args)> call;
};

// Owns every Value of one or more unpickled objects.
class Arena {
 public:
  Value* make(Kind k);

 private:
  std::deque<Value> values_;
};

// Unpickles one object (up to STOP) from data[pos...], advancing pos past it, and returns its root.
// `label` names the stream in errors, e.g. "model.pth (archive/data.pkl)".
Value* unpickle(Arena& arena, const uint8_t* data, size_t size, size_t& pos, const std::string& label,
                const Hooks& hooks);

// Whether `global` ("module.name") may appear in a checkpoint.
bool global_allowed(const std::string& global);

}  // namespace cb::pickle
