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
  PackedTags packed;
};

// The packed-weight tags of __metadata__[kWeightFormatKey]; each must name a U8 [rows, row_bytes] entry.
PackedTags parse_packed_tags(const Parsed& p, const std::string& label) {
  PackedTags out;
  auto it = p.metadata.find(kWeightFormatKey);
  if (it == p.metadata.end()) return out;
  auto tags = nlohmann::json::parse(it->second, nullptr, false);
  if (tags.is_discarded() || !tags.is_object())
    fail("{}: __metadata__ '{}' is not a JSON object {{tensor: {{format, shape}}}}", label, kWeightFormatKey);
  for (auto t = tags.begin(); t != tags.end(); ++t) {
    const auto& name = t.key();
    const auto& v = t.value();
    const auto entry = std::find_if(p.entries.begin(), p.entries.end(), [&](const auto& e) { return e.name == name; });
    if (entry == p.entries.end()) fail("{}: {} tags '{}', which the file does not hold", label, kWeightFormatKey, name);
    if (!v.is_object() || !v.contains("format") || !v["format"].is_string() || !v.contains("shape") ||
        !v["shape"].is_array() || v["shape"].size() != 2 || !v["shape"][0].is_number_unsigned() ||
        !v["shape"][1].is_number_unsigned())
      fail("{}: {} entry of '{}' must be {{\"format\": \"q8_0\"|\"q4_0\", \"shape\": [rows, cols]}}", label,
           kWeightFormatKey, name);
    StoredTensor s;
    const auto format = v["format"].get<std::string>();
    if (format != "q8_0" && format != "q4_0")
      fail("{}: tensor '{}' is tagged '{}'; packed formats are q8_0 and q4_0", label, name, format);
    s.packed = kernels::parse_weight_format(format);
    s.rows = int64_t(std::min<uint64_t>(v["shape"][0].get<uint64_t>(), uint64_t(1) << 48));
    s.cols = int64_t(std::min<uint64_t>(v["shape"][1].get<uint64_t>(), uint64_t(1) << 48));
    if (s.cols % kernels::kQuantBlock != 0)
      fail("{}: tensor '{}': a {} weight needs a multiple of {} columns, the tag says {}", label, name, format,
           kernels::kQuantBlock, s.cols);
    const std::vector<int64_t> want{s.rows, kernels::row_bytes(*s.packed, s.cols)};
    if (entry->dtype != torch::kUInt8 || entry->shape != want)
      fail("{}: tensor '{}' is tagged {} [{}, {}] so must be U8 [{}, {}], but is {} [{}]", label, name, format, s.rows,
           s.cols, want[0], want[1], safetensors_dtype_name(entry->dtype), fmt::join(entry->shape, ", "));
    out.emplace(name, std::move(s));
  }
  return out;
}

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
  p.packed = parse_packed_tags(p, label);
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
  packed_ = std::move(p.packed);
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

StoredTensor SafetensorsFile::stored(const std::string& name) const {
  auto it = packed_.find(name);
  StoredTensor s = it == packed_.end() ? StoredTensor{} : it->second;
  s.data = tensor(name);
  return s;
}

kernels::PackedWeight StoredTensor::packed_weight() const {
  if (!packed)
    fail("packed_weight: the stored tensor is a dense {} tensor", std::string(c10::toString(data.scalar_type())));
  return kernels::packed_weight_from_storage(data, *packed, rows, cols);
}

TensorSpec TensorSpec::dense(std::string name, torch::ScalarType dtype, std::vector<int64_t> shape) {
  return {std::move(name), dtype, std::move(shape), std::nullopt, 0};
}

TensorSpec TensorSpec::packed_weight(std::string name, kernels::WeightFormat format, int64_t rows, int64_t cols) {
  if (!kernels::is_block_format(format))
    fail("tensor '{}': {} is not a packed format (a 16-bit weight is a plain tensor)", name,
         kernels::weight_format_name(format));
  return {std::move(name), torch::kUInt8, {rows, kernels::row_bytes(format, cols)}, format, cols};
}

size_t TensorSpec::bytes() const {
  size_t n = c10::elementSize(dtype);
  for (auto d : shape) n *= size_t(d);
  return n;
}

SafetensorsWriter::SafetensorsWriter(const std::filesystem::path& path, std::vector<TensorSpec> plan,
                                     std::map<std::string, std::string> metadata)
    : file_(path), plan_(std::move(plan)) {
  nlohmann::ordered_json header;
  nlohmann::json tags = nlohmann::json::object();
  for (const auto& t : plan_)
    if (t.packed) tags[t.name] = {{"format", kernels::weight_format_name(*t.packed)}, {"shape", {t.shape[0], t.cols}}};
  if (!tags.empty()) metadata[kWeightFormatKey] = tags.dump();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : plan_) {
    if (header.contains(t.name)) fail("{}: tensor '{}' planned twice", path.string(), t.name);
    header[t.name] = {
        {"dtype", safetensors_dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes()}}};
    offset += t.bytes();
  }
  auto h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // keeps every tensor 8-byte aligned in the mapping
  uint64_t n = h.size();
  file_.write(&n, 8);
  file_.write(h);
}

void SafetensorsWriter::write(const std::string& name, const torch::Tensor& t) {
  const auto& target = file_.target().string();
  if (next_ >= plan_.size()) fail("{}: tensor '{}' written past the end of the plan", target, name);
  const auto& spec = plan_[next_];
  if (spec.name != name) fail("{}: tensor '{}' written where the plan has '{}'", target, name, spec.name);
  if (t.scalar_type() != spec.dtype || t.sizes().vec() != spec.shape)
    fail("{}: tensor '{}' is {} [{}], the plan says {} [{}]", target, name, safetensors_dtype_name(t.scalar_type()),
         fmt::join(t.sizes(), ", "), safetensors_dtype_name(spec.dtype), fmt::join(spec.shape, ", "));
  const auto c = t.detach().to(torch::kCPU).contiguous();
  file_.write(c.data_ptr(), spec.bytes());
  data_bytes_ += spec.bytes();
  ++next_;
}

void SafetensorsWriter::commit() {
  if (next_ != plan_.size())
    fail("{}: {} of {} planned tensors written (next: '{}')", file_.target().string(), next_, plan_.size(),
         plan_[next_].name);
  file_.commit();
}

void save_safetensors(const std::filesystem::path& path, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata, const PackedTags& packed) {
  std::vector<TensorSpec> plan;
  for (const auto& kv : tensors) {
    const auto tag = packed.find(kv.key());
    plan.push_back(tag == packed.end()
                       ? TensorSpec::dense(kv.key(), kv.value().scalar_type(), kv.value().sizes().vec())
                       : TensorSpec::packed_weight(kv.key(), *tag->second.packed, tag->second.rows, tag->second.cols));
  }
  SafetensorsWriter w(path, std::move(plan), metadata);
  for (const auto& kv : tensors) w.write(kv.key(), kv.value());
  w.commit();
}

}  // namespace cb
