#include "framework/checkpoint/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "framework/checkpoint/atomic_file.h"
#include "framework/error.h"

namespace cb {
namespace {

constexpr size_t kMaxHeader = size_t(100) << 20;  // the reference implementation's limit

const std::vector<std::pair<std::string, torch::ScalarType>>& dtype_table() {
  static const std::vector<std::pair<std::string, torch::ScalarType>> t = {
      {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
      {"I64", torch::kInt64},   {"I32", torch::kInt32},   {"I16", torch::kInt16},   {"I8", torch::kInt8},
      {"U8", torch::kUInt8},    {"BOOL", torch::kBool}};
  return t;
}

struct Parsed {
  size_t header_len = 0;
  std::vector<SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;
};

Parsed parse(const uint8_t* data, size_t size, const std::string& label) {
  Parsed p;
  if (size < 8) fail("{}: not a safetensors file: {} bytes, shorter than the 8-byte header length", label, size);
  uint64_t n = 0;
  std::memcpy(&n, data, 8);  // little-endian host
  if (n > size - 8) fail("{}: safetensors header length {} runs past the end of the file ({} bytes)", label, n, size);
  if (n > kMaxHeader) fail("{}: safetensors header length {} exceeds the 100 MiB limit", label, n);
  p.header_len = size_t(n);
  auto header = nlohmann::json::parse(data + 8, data + 8 + n, nullptr, false);
  if (header.is_discarded() || !header.is_object()) fail("{}: safetensors header is not a JSON object", label);
  const size_t data_size = size - 8 - p.header_len;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const auto& v = it.value();
    if (it.key() == "__metadata__") {
      if (!v.is_object()) fail("{}: __metadata__ is not an object", label);
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail("{}: __metadata__ value '{}' is not a string", label, m.key());
        p.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    SafetensorsEntry e;
    e.name = it.key();
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail("{}: tensor '{}' lacks dtype/shape/data_offsets", label, e.name);
    if (!v["dtype"].is_string()) fail("{}: tensor '{}': dtype is not a string", label, e.name);
    auto dt = v["dtype"].get<std::string>();
    bool found = false;
    for (const auto& [k, t] : dtype_table())
      if (k == dt) e.dtype = t, found = true;
    if (!found) fail("{}: tensor '{}': unsupported dtype '{}'", label, e.name, dt);
    if (!v["shape"].is_array()) fail("{}: tensor '{}': shape is not an array", label, e.name);
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) fail("{}: tensor '{}': shape entry is not a non-negative integer", label, e.name);
      auto x = d.get<uint64_t>();
      if (x > (uint64_t(1) << 48) || (x && numel > (uint64_t(1) << 62) / x))
        fail("{}: tensor '{}': absurd shape", label, e.name);
      numel *= x;
      e.shape.push_back(int64_t(x));
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail("{}: tensor '{}': data_offsets must be two non-negative integers", label, e.name);
    auto b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    if (b > en || en > data_size)
      fail("{}: tensor '{}': data_offsets [{}, {}) out of range (data section is {} bytes)", label, e.name, b, en,
           data_size);
    if (en - b != numel * c10::elementSize(e.dtype))
      fail("{}: tensor '{}': data_offsets span {} bytes but {} x {} needs {}", label, e.name, en - b, dt, numel,
           numel * c10::elementSize(e.dtype));
    e.begin = size_t(b);
    e.end = size_t(en);
    p.entries.push_back(std::move(e));
  }
  // JSON objects are unordered; the data section keeps the writer's order, so report that order.
  std::stable_sort(p.entries.begin(), p.entries.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  return p;
}

}  // namespace

std::string safetensors_dtype_name(torch::ScalarType t) {
  for (const auto& [k, v] : dtype_table())
    if (v == t) return k;
  fail("safetensors: dtype {} cannot be stored", c10::toString(t));
}

void SafetensorsFile::validate_buffer(const uint8_t* data, size_t size, const std::string& label) {
  parse(data, size, label);
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : file_(MappedFile::open(path)) {
  auto p = parse(file_->data(), file_->size(), path.string());
  header_len_ = p.header_len;
  entries_ = std::move(p.entries);
  metadata_ = std::move(p.metadata);
  for (size_t i = 0; i < entries_.size(); ++i) index_[entries_[i].name] = i;
}

torch::Tensor SafetensorsFile::tensor(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("{}: no tensor named '{}'", path().string(), name);
  const auto& e = entries_[it->second];
  auto opts = torch::TensorOptions().dtype(e.dtype);
  if (e.end == e.begin) return torch::empty(e.shape, opts);
  auto* ptr = const_cast<uint8_t*>(file_->data() + 8 + header_len_ + e.begin);
  if (reinterpret_cast<uintptr_t>(ptr) % c10::elementSize(e.dtype) != 0)
    return torch::from_blob(ptr, e.shape, opts).clone();  // unaligned: copy once
  auto keep = file_;
  return torch::from_blob(
      ptr, e.shape, [keep](void*) {}, opts);
}

StateDict SafetensorsFile::tensors() const {
  StateDict sd;
  for (const auto& e : entries_) sd.insert(e.name, tensor(e.name));
  return sd;
}

void save_safetensors(const std::filesystem::path& path, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;
  size_t offset = 0;
  for (const auto& kv : tensors) {
    auto t = kv.value().detach().to(torch::kCPU).contiguous();
    size_t n = t.numel() * t.element_size();
    header[kv.key()] = {{"dtype", safetensors_dtype_name(t.scalar_type())},
                        {"shape", t.sizes().vec()},
                        {"data_offsets", {offset, offset + n}}};
    offset += n;
    data.push_back(t);
  }
  auto h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  uint64_t n = h.size();
  AtomicFile f(path);
  f.write(&n, 8);
  f.write(h);
  for (const auto& t : data) f.write(t.data_ptr(), t.numel() * t.element_size());
  f.commit();
}

}  // namespace cb
