#include "framework/checkpoint/torch_load.h"

#include <array>
#include <cstring>
#include <unordered_map>

#include "framework/checkpoint/zip_reader.h"
#include "framework/error.h"

namespace cb {
namespace {

using pickle::Kind;
using pickle::Value;

torch::ScalarType storage_dtype(const std::string& cls) {
  static const std::array<std::pair<const char*, torch::ScalarType>, 10> table = {
      {{"torch.FloatStorage", torch::kFloat32},
       {"torch.HalfStorage", torch::kFloat16},
       {"torch.BFloat16Storage", torch::kBFloat16},
       {"torch.DoubleStorage", torch::kFloat64},
       {"torch.LongStorage", torch::kInt64},
       {"torch.IntStorage", torch::kInt32},
       {"torch.ShortStorage", torch::kInt16},
       {"torch.CharStorage", torch::kInt8},
       {"torch.ByteStorage", torch::kUInt8},
       {"torch.BoolStorage", torch::kBool}}};
  for (const auto& [name, t] : table)
    if (cls == name) return t;
  fail("'{}' is not a storage type", cls);
}

// A flat tensor over `numel` elements at `ptr` inside `file`: a view when aligned for the dtype,
// else a copy (legacy files place storages at arbitrary offsets).
torch::Tensor storage_over(const std::shared_ptr<const MappedFile>& file, const uint8_t* ptr, int64_t numel,
                           torch::ScalarType dtype) {
  auto opts = torch::TensorOptions().dtype(dtype);
  if (numel == 0) return torch::empty({0}, opts);
  auto* p = const_cast<uint8_t*>(ptr);
  if (reinterpret_cast<uintptr_t>(p) % c10::elementSize(dtype) != 0) return torch::from_blob(p, {numel}, opts).clone();
  auto keep = file;
  return torch::from_blob(
      p, {numel}, [keep](void*) {}, opts);
}

int64_t as_int(const Value* v, const std::string& label, const char* what) {
  if (!v || v->kind != Kind::Int) fail("{}: {} is not an int", label, what);
  return v->i;
}

std::vector<int64_t> int_tuple(const Value* v, const std::string& label, const char* what) {
  if (!v || v->kind != Kind::Tuple) fail("{}: {} is not a tuple", label, what);
  std::vector<int64_t> out;
  for (const Value* x : v->items) out.push_back(as_int(x, label, what));
  return out;
}

// torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
Value* rebuild_tensor(pickle::Arena& arena, const Value& args, const std::string& label) {
  if (args.items.size() < 6 || args.items.size() > 7)
    fail("{}: _rebuild_tensor_v2 with {} arguments", label, args.items.size());
  const Value* storage = args.items[0];
  if (storage->kind != Kind::Storage)
    fail("{}: _rebuild_tensor_v2 of a {}, not a storage", label, kind_name(storage->kind));
  const int64_t offset = as_int(args.items[1], label, "tensor storage offset");
  const auto sizes = int_tuple(args.items[2], label, "tensor size");
  const auto strides = int_tuple(args.items[3], label, "tensor stride");
  if (args.items[4]->kind != Kind::Bool) fail("{}: tensor requires_grad is not a bool", label);
  const bool requires_grad = args.items[4]->b;
  // Check the view against the storage before torch sees it: garbage must not reach set_().
  const int64_t numel = storage->i;
  if (sizes.size() != strides.size() || sizes.size() > 64)
    fail("{}: tensor over storage '{}' has {} sizes and {} strides", label, storage->s, sizes.size(), strides.size());
  if (offset < 0 || offset > numel)
    fail("{}: tensor offset {} outside storage '{}' of {} elements", label, offset, storage->s, numel);
  bool empty = false;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] < 0 || strides[d] < 0 || sizes[d] > (int64_t(1) << 48) || strides[d] > (int64_t(1) << 48))
      fail("{}: tensor over storage '{}' has invalid size/stride {}/{}", label, storage->s, sizes[d], strides[d]);
    empty |= sizes[d] == 0;
  }
  if (!empty) {
    __int128 last = offset;
    for (size_t d = 0; d < sizes.size(); ++d) last += __int128(sizes[d] - 1) * strides[d];
    if (last >= numel)
      fail("{}: tensor of size [{}] stride [{}] offset {} reaches element {} of storage '{}' ({} elements)", label,
           fmt::join(sizes, ","), fmt::join(strides, ","), offset, int64_t(last), storage->s, numel);
  }
  Value* t = arena.make(Kind::Tensor);
  if (!storage->tensor.defined()) return t;  // metadata-only pass
  const auto& flat = storage->tensor;
  t->tensor = torch::empty({0}, flat.options()).set_(flat.storage(), flat.storage_offset() + offset, sizes, strides);
  if (requires_grad) {
    if (!t->tensor.is_floating_point())
      fail("{}: a {} tensor cannot require grad", label, c10::toString(flat.scalar_type()));
    t->tensor.requires_grad_(true);
  }
  return t;
}

// torch._utils._rebuild_parameter(data, requires_grad, backward_hooks) and ..._with_state(..., state)
Value* rebuild_parameter(pickle::Arena& arena, const Value& args, bool with_state, const std::string& label) {
  if (args.items.size() != (with_state ? 4u : 3u))
    fail("{}: _rebuild_parameter with {} arguments", label, args.items.size());
  const Value* data = args.items[0];
  if (data->kind != Kind::Tensor) fail("{}: Parameter of a {}, not a tensor", label, kind_name(data->kind));
  if (args.items[1]->kind != Kind::Bool) fail("{}: Parameter requires_grad is not a bool", label);
  Value* p = arena.make(Kind::Tensor);
  p->is_parameter = true;
  if (with_state) p->state = args.items[3];
  if (!data->tensor.defined()) return p;
  p->tensor = data->tensor.detach();
  if (args.items[1]->b) {
    if (!p->tensor.is_floating_point())
      fail("{}: a {} Parameter cannot require grad", label, c10::toString(p->tensor.scalar_type()));
    p->tensor.requires_grad_(true);
  }
  return p;
}

constexpr std::array<uint8_t, 10> kLegacyMagic = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

TorchObject load_zip(const std::shared_ptr<const MappedFile>& file) {
  const std::string path = file->path().string();
  ZipReader zip(file);
  // torch.save puts every record in one top folder (the file stem, or "archive" for file handles).
  const ZipRecord* pkl = nullptr;
  for (const auto& r : zip.records()) {
    auto slash = r.name.find('/');
    if (slash != std::string::npos && r.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      pkl = &r;
      break;
    }
  }
  if (!pkl) fail("{}: zip archive without <prefix>/data.pkl: not a torch.save file", path);
  const std::string prefix = pkl->name.substr(0, pkl->name.size() - std::strlen("data.pkl"));
  if (const ZipRecord* bo = zip.find(prefix + "byteorder")) {
    auto d = zip.data(*bo);
    if (std::string_view(reinterpret_cast<const char*>(d.data()), d.size()) != "little")
      fail("{}: big-endian checkpoints are not supported", path);
  }
  std::unordered_map<std::string, const ZipRecord*> records;
  for (const auto& r : zip.records()) records.emplace(r.name, &r);

  StorageSource source = [&](const std::string& key, torch::ScalarType dtype, int64_t numel) {
    auto it = records.find(prefix + "data/" + key);
    if (it == records.end()) fail("{}: storage '{}' has no record {}data/{}", path, key, prefix, key);
    auto bytes = zip.data(*it->second);
    const size_t elem = c10::elementSize(dtype);
    if (uint64_t(numel) > bytes.size() / elem || uint64_t(numel) * elem != bytes.size())
      fail("{}: record '{}' holds {} bytes but storage '{}' needs {} x {} bytes", path, it->first, bytes.size(), key,
           numel, elem);
    return storage_over(file, bytes.data(), numel, dtype);
  };
  TorchObject obj{std::make_shared<pickle::Arena>(), nullptr, "torch-zip"};
  auto pkl_bytes = zip.data(*pkl);
  size_t pos = 0;
  obj.root = unpickle_torch(*obj.arena, pkl_bytes.data(), pkl_bytes.size(), pos,
                            fmt::format("{} ({})", path, pkl->name), source);
  return obj;
}

TorchObject load_legacy(const std::shared_ptr<const MappedFile>& file) {
  const std::string path = file->path().string();
  const uint8_t* d = file->data();
  const size_t n = file->size();
  size_t pos = 0;
  pickle::Arena scratch;
  const Value* magic = pickle::unpickle(scratch, d, n, pos, path, {});
  if (magic->kind != Kind::BigInt || magic->s != std::string(kLegacyMagic.begin(), kLegacyMagic.end()))
    fail("{}: not a torch.save file (legacy magic number missing)", path);
  const Value* protocol = pickle::unpickle(scratch, d, n, pos, path, {});
  if (protocol->kind != Kind::Int || protocol->i != 1001)
    fail("{}: unsupported legacy torch.save protocol version", path);
  const Value* sys_info = pickle::unpickle(scratch, d, n, pos, path, {});
  if (const Value* le = sys_info->get("little_endian"); le && le->kind == Kind::Bool && !le->b)
    fail("{}: big-endian checkpoints are not supported", path);

  // Storage bytes follow the object, so a first pass learns each storage's dtype and size.
  const size_t object_pos = pos;
  std::unordered_map<std::string, std::pair<torch::ScalarType, int64_t>> meta;
  unpickle_torch(scratch, d, n, pos, path, [&](const std::string& key, torch::ScalarType dtype, int64_t numel) {
    meta.emplace(key, std::make_pair(dtype, numel));
    return torch::Tensor();
  });
  const Value* keys = pickle::unpickle(scratch, d, n, pos, path, {});
  if (keys->kind != Kind::List) fail("{}: legacy storage-key list is a {}", path, kind_name(keys->kind));
  std::unordered_map<std::string, torch::Tensor> storages;
  for (const Value* k : keys->items) {
    if (k->kind != Kind::Str) fail("{}: legacy storage key is a {}", path, kind_name(k->kind));
    auto it = meta.find(k->s);
    if (it == meta.end()) fail("{}: storage '{}' is listed but no tensor uses it", path, k->s);
    const auto [dtype, numel] = it->second;
    if (n - pos < 8) fail("{}: truncated: storage '{}' is missing", path, k->s);
    uint64_t count = 0;
    for (int j = 0; j < 8; ++j) count |= uint64_t(d[pos + j]) << (8 * j);
    pos += 8;
    const size_t elem = c10::elementSize(dtype);
    if (count != uint64_t(numel))
      fail("{}: storage '{}' holds {} elements, its tensors expect {}", path, k->s, count, numel);
    if (count > (n - pos) / elem)
      fail("{}: truncated: storage '{}' needs {} bytes, {} left", path, k->s, count * elem, n - pos);
    storages[k->s] = storage_over(file, d + pos, numel, dtype);
    pos += size_t(count * elem);
  }
  TorchObject obj{std::make_shared<pickle::Arena>(), nullptr, "torch-legacy"};
  pos = object_pos;
  obj.root = unpickle_torch(*obj.arena, d, n, pos, path, [&](const std::string& key, torch::ScalarType, int64_t) {
    auto it = storages.find(key);
    if (it == storages.end()) fail("{}: storage '{}' is missing from the storage-key list", path, key);
    return it->second;
  });
  return obj;
}

void collect_tensors(const Value* v, const std::string& path, int depth,
                     std::vector<std::pair<std::string, torch::Tensor>>& out) {
  if (depth > 1000) fail("object tree nested deeper than 1000 levels at '{}'", path);
  auto child = [&](const std::string& key) { return path.empty() ? key : path + "/" + key; };
  if (v->kind == Kind::Tensor) {
    out.emplace_back(path, v->tensor);
  } else if (v->kind == Kind::List || v->kind == Kind::Tuple) {
    for (size_t i = 0; i < v->items.size(); ++i) collect_tensors(v->items[i], child(std::to_string(i)), depth + 1, out);
  } else if (v->kind == Kind::Dict) {
    for (const auto& [k, x] : v->entries) {
      std::string key = k->kind == Kind::Str ? k->s : k->kind == Kind::Int ? std::to_string(k->i) : kind_name(k->kind);
      collect_tensors(x, child(key), depth + 1, out);
    }
  }
}

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> tensors_in(const pickle::Value* root) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  collect_tensors(root, "", 0, out);
  return out;
}

bool looks_like_legacy_torch(const uint8_t* data, size_t size) {
  // PROTO 2, LONG1 of 10 bytes, the magic number
  return size >= 14 && data[0] == 0x80 && data[1] == 0x02 && data[2] == 0x8a && data[3] == 0x0a &&
         std::memcmp(data + 4, kLegacyMagic.data(), kLegacyMagic.size()) == 0;
}

pickle::Value* unpickle_torch(pickle::Arena& arena, const uint8_t* data, size_t size, size_t& pos,
                              const std::string& label, const StorageSource& source) {
  // One storage per key, however often it is named.
  std::unordered_map<std::string, std::pair<Value*, torch::ScalarType>> storages;
  pickle::Hooks hooks;
  hooks.persistent_load = [&](const Value& pid) -> Value* {
    // ('storage', storage type, key, location, numel) and, in legacy files, a sixth view_metadata
    // entry: None or (view key, offset, size) for a view of a larger storage.
    const auto& it = pid.items;
    if (pid.kind != Kind::Tuple || it.size() < 5 || it.size() > 6 || it[0]->kind != Kind::Str || it[0]->s != "storage")
      fail("{}: unsupported persistent id (expected ('storage', type, key, location, size))", label);
    if (it[1]->kind != Kind::Global) fail("{}: storage type is a {}", label, kind_name(it[1]->kind));
    const torch::ScalarType dtype = [&] {
      try {
        return storage_dtype(it[1]->s);
      } catch (const Error& e) {
        fail("{}: {}", label, e.what());
      }
    }();
    if (it[2]->kind != Kind::Str) fail("{}: storage key is a {}", label, kind_name(it[2]->kind));
    const std::string& key = it[2]->s;
    const int64_t numel = as_int(it[4], label, "storage size");
    if (numel < 0) fail("{}: storage '{}' has negative size {}", label, key, numel);
    auto [entry, fresh] = storages.try_emplace(key, nullptr, dtype);
    Value*& s = entry->second.first;
    if (fresh) {
      s = arena.make(Kind::Storage);
      s->s = key;
      s->i = numel;
      s->tensor = source(key, dtype, numel);
    } else if (s->i != numel || entry->second.second != dtype) {
      fail("{}: storage '{}' is named with two different types or sizes", label, key);
    }
    if (it.size() == 6 && it[5]->kind != Kind::None) {
      const Value* view = it[5];
      if (view->kind != Kind::Tuple || view->items.size() != 3) fail("{}: bad view of storage '{}'", label, key);
      const int64_t off = as_int(view->items[1], label, "storage view offset");
      const int64_t len = as_int(view->items[2], label, "storage view size");
      if (off < 0 || len < 0 || off > numel || len > numel - off)
        fail("{}: view [{}, +{}) outside storage '{}' of {} elements", label, off, len, key, numel);
      Value* v = arena.make(Kind::Storage);
      v->s = key;
      v->i = len;
      if (s->tensor.defined()) v->tensor = s->tensor.narrow(0, off, len);
      return v;
    }
    return s;
  };
  hooks.call = [&](const std::string& global, const Value& args) -> Value* {
    if (global == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(arena, args, label);
    if (global == "torch._utils._rebuild_parameter") return rebuild_parameter(arena, args, false, label);
    if (global == "torch._utils._rebuild_parameter_with_state") return rebuild_parameter(arena, args, true, label);
    fail("{}: global '{}' cannot be called", label, global);
  };
  return pickle::unpickle(arena, data, size, pos, label, hooks);
}

TorchObject torch_load(const std::filesystem::path& path) { return torch_load(MappedFile::open(path)); }

TorchObject torch_load(std::shared_ptr<const MappedFile> file) {
  if (looks_like_zip(file->data(), file->size())) return load_zip(file);
  if (looks_like_legacy_torch(file->data(), file->size())) return load_legacy(file);
  fail("{}: not a torch.save file (neither a zip archive nor the legacy format)", file->path().string());
}

}  // namespace cb
