#include "framework/checkpoint/torch_save.h"

#include <cstring>

#include "framework/checkpoint/zip_writer.h"
#include "framework/error.h"

namespace cb {
namespace {

using pickle::Kind;
using pickle::Value;

// Pickle protocol 2 opcodes (Python's Lib/pickle.py).
constexpr char kProto = '\x80', kStop = '.', kNone = 'N', kTrue = '\x88', kFalse = '\x89', kBinInt1 = 'K',
               kBinInt2 = 'M', kBinInt = 'J', kLong1 = '\x8a', kLong4 = '\x8b', kBinFloat = 'G', kBinUnicode = 'X',
               kEmptyTuple = ')', kTuple1 = '\x85', kTuple2 = '\x86', kTuple3 = '\x87', kMark = '(', kTuple = 't',
               kEmptyList = ']', kAppends = 'e', kEmptyDict = '}', kSetItems = 'u', kGlobal = 'c', kReduce = 'R',
               kBinPersId = 'Q';

const char* storage_class(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "FloatStorage";
    case torch::kFloat16: return "HalfStorage";
    case torch::kBFloat16: return "BFloat16Storage";
    case torch::kFloat64: return "DoubleStorage";
    case torch::kInt64: return "LongStorage";
    case torch::kInt32: return "IntStorage";
    case torch::kInt16: return "ShortStorage";
    case torch::kInt8: return "CharStorage";
    case torch::kUInt8: return "ByteStorage";
    case torch::kBool: return "BoolStorage";
    default: fail("torch_save: tensors of dtype {} cannot be written", c10::toString(t));
  }
}

// Python's pickle framing is optional for protocol 2, and no memo is needed: the tree has no
// shared objects that must stay shared (each tensor has its own storage).
class Pickler {
 public:
  std::string out;
  std::vector<torch::Tensor> storages;  // contiguous CPU tensors, key = index

  void value(const Value& v, int depth = 0) {
    if (depth > 1000) fail("torch_save: the object is nested deeper than 1000 levels");
    switch (v.kind) {
      case Kind::None: op(kNone); break;
      case Kind::Bool: op(v.b ? kTrue : kFalse); break;
      case Kind::Int: integer(v.i); break;
      case Kind::BigInt: big_int(v.s); break;
      case Kind::Float: real(v.f); break;
      case Kind::Str: str(v.s); break;
      case Kind::Tuple: tuple(v.items, depth); break;
      case Kind::List:
        op(kEmptyList);
        if (!v.items.empty()) {
          op(kMark);
          for (const Value* x : v.items) value(*x, depth + 1);
          op(kAppends);
        }
        break;
      case Kind::Dict:
        if (v.ordered) {
          global("collections", "OrderedDict");
          op(kEmptyTuple);
          op(kReduce);
        } else {
          op(kEmptyDict);
        }
        if (!v.entries.empty()) {
          op(kMark);
          for (const auto& [k, x] : v.entries) {
            value(*k, depth + 1);
            value(*x, depth + 1);
          }
          op(kSetItems);
        }
        break;
      case Kind::Tensor: tensor(v.tensor); break;
      default: fail("torch_save: a {} value cannot be written", pickle::kind_name(v.kind));
    }
  }

 private:
  void op(char c) { out.push_back(c); }
  void le(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>(v >> (8 * i) & 0xFF));
  }
  void integer(int64_t i) {
    if (i >= 0 && i < 0x100) {
      op(kBinInt1);
      le(static_cast<uint64_t>(i), 1);
    } else if (i >= 0 && i < 0x10000) {
      op(kBinInt2);
      le(static_cast<uint64_t>(i), 2);
    } else if (i >= INT32_MIN && i <= INT32_MAX) {
      op(kBinInt);
      le(static_cast<uint64_t>(i), 4);
    } else {
      // LONG1: the shortest little-endian two's complement.
      std::string bytes;
      for (int k = 0; k < 8; ++k) bytes.push_back(static_cast<char>(static_cast<uint64_t>(i) >> (8 * k) & 0xFF));
      while (bytes.size() > 1) {
        const auto last = static_cast<uint8_t>(bytes.back()), prev = static_cast<uint8_t>(bytes[bytes.size() - 2]);
        if ((last == 0 && !(prev & 0x80)) || (last == 0xFF && (prev & 0x80))) bytes.pop_back();
        else break;
      }
      big_int(bytes);
    }
  }
  void big_int(const std::string& bytes) {
    if (bytes.size() < 0x100) {
      op(kLong1);
      le(bytes.size(), 1);
    } else {
      op(kLong4);
      le(bytes.size(), 4);
    }
    out += bytes;
  }
  void real(double f) {
    uint64_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    op(kBinFloat);
    for (int k = 7; k >= 0; --k) out.push_back(static_cast<char>(bits >> (8 * k) & 0xFF));  // big-endian
  }
  void str(const std::string& s) {
    op(kBinUnicode);
    le(s.size(), 4);
    out += s;
  }
  void global(const char* module, const char* name) {
    op(kGlobal);
    out += module;
    out += '\n';
    out += name;
    out += '\n';
  }
  void tuple(const std::vector<Value*>& items, int depth) {
    if (items.empty()) return op(kEmptyTuple);
    if (items.size() > 3) op(kMark);
    for (const Value* x : items) value(*x, depth + 1);
    op(items.size() == 1 ? kTuple1 : items.size() == 2 ? kTuple2 : items.size() == 3 ? kTuple3 : kTuple);
  }
  void ints(torch::IntArrayRef xs) {
    if (xs.empty()) return op(kEmptyTuple);
    if (xs.size() > 3) op(kMark);
    for (const auto x : xs) integer(x);
    op(xs.size() == 1 ? kTuple1 : xs.size() == 2 ? kTuple2 : xs.size() == 3 ? kTuple3 : kTuple);
  }
  void tensor(const torch::Tensor& t) {
    if (!t.defined()) fail("torch_save: an undefined tensor cannot be written");
    const auto* cls = storage_class(t.scalar_type());
    auto data = t.detach().to(torch::kCPU).contiguous();
    const auto key = std::to_string(storages.size());
    storages.push_back(data);
    global("torch._utils", "_rebuild_tensor_v2");
    op(kMark);
    // The storage: a persistent id resolved by torch.load against <archive>/data/<key>.
    op(kMark);
    str("storage");
    global("torch", cls);
    str(key);
    str("cpu");
    integer(data.numel());
    op(kTuple);
    op(kBinPersId);
    integer(0);  // storage offset
    ints(data.sizes());
    ints(data.strides());
    op(kFalse);  // requires_grad
    global("collections", "OrderedDict");
    op(kEmptyTuple);
    op(kReduce);  // backward hooks: OrderedDict()
    op(kTuple);
    op(kReduce);
  }
};

}  // namespace

Value* TreeBuilder::none() { return arena_.make(Kind::None); }

Value* TreeBuilder::boolean(bool b) {
  Value* v = arena_.make(Kind::Bool);
  v->b = b;
  return v;
}

Value* TreeBuilder::integer(int64_t i) {
  Value* v = arena_.make(Kind::Int);
  v->i = i;
  return v;
}

Value* TreeBuilder::real(double f) {
  Value* v = arena_.make(Kind::Float);
  v->f = f;
  return v;
}

Value* TreeBuilder::str(std::string s) {
  Value* v = arena_.make(Kind::Str);
  v->s = std::move(s);
  return v;
}

Value* TreeBuilder::tensor(torch::Tensor t) {
  Value* v = arena_.make(Kind::Tensor);
  v->tensor = std::move(t);
  return v;
}

Value* TreeBuilder::tuple(std::vector<Value*> items) {
  Value* v = arena_.make(Kind::Tuple);
  v->items = std::move(items);
  return v;
}

Value* TreeBuilder::list(std::vector<Value*> items) {
  Value* v = arena_.make(Kind::List);
  v->items = std::move(items);
  return v;
}

Value* TreeBuilder::dict(bool ordered) {
  Value* v = arena_.make(Kind::Dict);
  v->ordered = ordered;
  return v;
}

Value* TreeBuilder::set(Value* dict, Value* key, Value* value) {
  // The reader's dict index keys ("s" + str, "i" + int), so Value::get finds what was set.
  std::string hash;
  if (key->kind == Kind::Str) hash = "s" + key->s;
  else if (key->kind == Kind::Int) hash = fmt::format("i{}", key->i);
  else fail("torch_save: dict keys must be str or int, not {}", pickle::kind_name(key->kind));
  auto [it, fresh] = dict->index.emplace(hash, dict->entries.size());
  if (fresh) dict->entries.emplace_back(key, value);
  else dict->entries[it->second].second = value;
  return dict;
}

Value* TreeBuilder::set(Value* dict, const std::string& key, Value* value) { return set(dict, str(key), value); }

Value* TreeBuilder::json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return none();
    case nlohmann::ordered_json::value_t::boolean: return boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) fail("torch_save: integer {} is too large", u);
      return integer(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return real(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return str(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value*> items;
      for (const auto& x : j) items.push_back(json(x));
      return list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Value* d = dict();
      for (const auto& [k, x] : j.items()) set(d, k, json(x));
      return d;
    }
    default: fail("torch_save: JSON value of type {} cannot be written", j.type_name());
  }
}

Value* TreeBuilder::state_dict(const StateDict& sd) {
  Value* d = dict(true);
  for (const auto& kv : sd) set(d, kv.key(), tensor(kv.value()));
  return d;
}

void torch_save(const Value& root, const std::filesystem::path& path, const std::string& archive) {
  Pickler p;
  p.out = {kProto, '\x02'};
  p.value(root);
  p.out.push_back(kStop);
  ZipWriter zip(path);
  zip.add(archive + "/data.pkl", p.out);
  for (size_t k = 0; k < p.storages.size(); ++k) {
    const auto& t = p.storages[k];
    zip.add(archive + "/data/" + std::to_string(k), t.data_ptr(), t.numel() * t.element_size());
  }
  zip.add(archive + "/version", std::string_view("3\n"));
  zip.finish();
}

}  // namespace cb
