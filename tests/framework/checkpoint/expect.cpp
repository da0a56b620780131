#include "tests/framework/checkpoint/expect.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <map>

#include "tests/support/golden.h"

namespace cb::test {

using pickle::Kind;
using pickle::Value;

std::filesystem::path ckpt_dir() { return golden_dir() / "ckpt"; }

std::vector<nlohmann::json> ckpt_expectations() {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(ckpt_dir())) {
    const auto name = e.path().filename().string();
    if (e.is_regular_file() && name.size() > 12 && name.ends_with(".expect.json")) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<nlohmann::json> out;
  for (const auto& f : files) {
    std::ifstream in(f);
    auto j = nlohmann::json::parse(in);
    auto target = f.string();
    target.resize(target.size() - std::string(".expect.json").size());
    j["_path"] = target;
    out.push_back(std::move(j));
  }
  return out;
}

std::vector<nlohmann::json> ckpt_expectations_with_tensor(const std::string& path) {
  std::vector<nlohmann::json> out;
  for (auto& e : ckpt_expectations())
    for (const auto& t : e.value("tensors", nlohmann::json::array()))
      if (t.at("path") == path) {
        out.push_back(e);
        break;
      }
  return out;
}

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "float32";
    case torch::kFloat16: return "float16";
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat64: return "float64";
    case torch::kInt64: return "int64";
    case torch::kInt32: return "int32";
    case torch::kInt16: return "int16";
    case torch::kInt8: return "int8";
    case torch::kUInt8: return "uint8";
    case torch::kBool: return "bool";
    default: return c10::toString(t);
  }
}

namespace {

nlohmann::json key_json(const Value* k) {
  switch (k->kind) {
    case Kind::Str: return k->s;
    case Kind::Int: return k->i;
    case Kind::Bool: return k->b;
    default: return std::string("<") + kind_name(k->kind) + ">";
  }
}

std::string key_text(const Value* k) {
  auto j = key_json(k);
  return j.is_string() ? j.get<std::string>() : j.dump();
}

void visit(const Value* v, const std::string& path, Walk& w, int depth) {
  if (depth > 200) FAIL("object tree deeper than 200 levels at " << path);
  auto child = [&](const std::string& key) { return path.empty() ? key : path + "/" + key; };
  switch (v->kind) {
    case Kind::Dict: {
      nlohmann::json c = {{"path", path}, {"type", v->ordered ? "OrderedDict" : "dict"}};
      c["keys"] = nlohmann::json::array();
      for (const auto& [k, x] : v->entries) c["keys"].push_back(key_json(k));
      if (v->state && v->state->get("_metadata")) c["has_metadata_attr"] = true;
      w.containers.push_back(c);
      for (const auto& [k, x] : v->entries) visit(x, child(key_text(k)), w, depth + 1);
      return;
    }
    case Kind::List:
    case Kind::Tuple: {
      w.containers.push_back({{"path", path}, {"type", kind_name(v->kind)}, {"len", v->items.size()}});
      for (size_t i = 0; i < v->items.size(); ++i) visit(v->items[i], child(std::to_string(i)), w, depth + 1);
      return;
    }
    case Kind::Tensor: w.tensors.push_back({path, v->tensor, v->is_parameter}); return;
    case Kind::None: w.leaves.push_back({{"path", path}, {"type", "none"}, {"value", nullptr}}); return;
    case Kind::Bool: w.leaves.push_back({{"path", path}, {"type", "bool"}, {"value", v->b}}); return;
    case Kind::Int: w.leaves.push_back({{"path", path}, {"type", "int"}, {"value", v->i}}); return;
    case Kind::Float: w.leaves.push_back({{"path", path}, {"type", "float"}, {"value", v->f}}); return;
    case Kind::Str: w.leaves.push_back({{"path", path}, {"type", "str"}, {"value", v->s}}); return;
    default: w.leaves.push_back({{"path", path}, {"type", kind_name(v->kind)}}); return;
  }
}

// |got - want| within ~1e-9 of the magnitude of the summed terms (exact for the grid-valued tensors).
void check_sum(double got, double want, double magnitude, const std::string& what) {
  INFO(what << ": got " << got << ", want " << want);
  CHECK(std::fabs(got - want) <= 1e-9 * magnitude + 1e-300);
}

}  // namespace

Walk walk(const Value* root) {
  Walk w;
  visit(root, "", w, 0);
  return w;
}

void check_tensor(const TensorAt& t, const nlohmann::json& e, const std::string& what) {
  INFO(what);
  REQUIRE(t.tensor.defined());
  CHECK(t.path == e["path"].get<std::string>());
  CHECK(dtype_name(t.tensor.scalar_type()) == e["dtype"].get<std::string>());
  CHECK(t.tensor.sizes().vec() == e["shape"].get<std::vector<int64_t>>());
  CHECK(t.tensor.strides().vec() == e["strides"].get<std::vector<int64_t>>());
  CHECK(t.tensor.storage_offset() == e["storage_offset"].get<int64_t>());
  CHECK(int64_t(t.tensor.storage().nbytes() / t.tensor.element_size()) == e["storage_numel"].get<int64_t>());
  CHECK(t.tensor.is_contiguous() == e["contiguous"].get<bool>());
  CHECK(t.tensor.numel() == e["numel"].get<int64_t>());
  if (e.contains("is_parameter")) CHECK(t.is_parameter == e["is_parameter"].get<bool>());
  if (e.contains("requires_grad")) CHECK(t.tensor.requires_grad() == e["requires_grad"].get<bool>());
  // Values over the logical row-major order, in float64.
  auto v = t.tensor.detach().to(torch::kFloat64).contiguous().reshape({-1});
  auto w = torch::arange(v.numel(), torch::kInt64).remainder(7).add(1).to(torch::kFloat64);
  const double magnitude = v.abs().sum().item<double>(), mag2 = v.square().sum().item<double>();
  check_sum(v.sum().item<double>(), e["sum"].get<double>(), magnitude, what + " sum");
  check_sum(v.square().sum().item<double>(), e["sumsq"].get<double>(), mag2, what + " sumsq");
  check_sum((v * w).sum().item<double>(), e["wsum"].get<double>(), 7 * magnitude, what + " wsum");
  auto first = e["first"].get<std::vector<double>>();
  REQUIRE(int64_t(first.size()) <= v.numel());
  for (size_t i = 0; i < first.size(); ++i) {
    INFO(what << " first[" << i << "]");
    CHECK(v[int64_t(i)].item<double>() == first[i]);
  }
}

void check_storage_sharing(const std::vector<TensorAt>& tensors, const nlohmann::json& expect,
                           const std::string& what) {
  REQUIRE(tensors.size() == expect.size());
  std::map<int64_t, const void*> id_to_storage;
  std::map<const void*, int64_t> storage_to_id;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const void* s = tensors[i].tensor.storage().unsafeGetStorageImpl();
    const int64_t id = expect[i]["storage_id"].get<int64_t>();
    auto [a, fresh_id] = id_to_storage.emplace(id, s);
    auto [b, fresh_storage] = storage_to_id.emplace(s, id);
    INFO(what << ": " << tensors[i].path << " (storage_id " << id << ")");
    CHECK(a->second == s);
    CHECK(b->second == id);
  }
}

}  // namespace cb::test
