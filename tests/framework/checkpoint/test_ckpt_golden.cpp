// Every checkpoint-layout fixture in <golden>/ckpt against its .expect.json (tests/golden/ckpt/README.md).
#include <catch2/catch.hpp>

#include <fstream>
#include <set>

#include "framework/checkpoint/load.h"
#include "framework/checkpoint/safetensors.h"
#include "framework/checkpoint/torch_load.h"
#include "framework/checkpoint/zip_reader.h"
#include "framework/error.h"
#include "tests/framework/checkpoint/expect.h"

using namespace cb;
using namespace cb::test;
using nlohmann::json;

namespace {

std::vector<json> with_format(std::initializer_list<const char*> formats) {
  std::vector<json> out;
  for (auto& e : ckpt_expectations())
    for (const char* f : formats)
      if (e.value("format", "") == f) out.push_back(e);
  return out;
}

void check_list(const json& got, const json& want, const std::string& what) {
  CHECK(got.size() == want.size());
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    INFO(what << " #" << i);
    CHECK(got[i].dump() == want[i].dump());
  }
}

void check_tensors(const std::vector<TensorAt>& got, const json& want, const std::string& what) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i)
    check_tensor(got[i], want[i], what + ": " + want[i]["path"].get<std::string>());
  check_storage_sharing(got, want, what);
}

// The root keys whose values are state dicts, per the expectation ("" when the root is one).
std::vector<std::string> state_dict_entries(const json& e) {
  std::set<std::string> tensor_paths;
  for (const auto& t : e["tensors"]) tensor_paths.insert(t["path"].get<std::string>());
  auto is_sd = [&](const json& c) {
    if (c["type"] != "dict" && c["type"] != "OrderedDict") return false;
    const auto prefix = c["path"].get<std::string>().empty() ? "" : c["path"].get<std::string>() + "/";
    for (const auto& k : c["keys"])
      if (!k.is_string() || !tensor_paths.count(prefix + k.get<std::string>())) return false;
    return true;
  };
  std::vector<std::string> out;
  for (const auto& c : e["containers"]) {
    auto p = c["path"].get<std::string>();
    if (p.find('/') == std::string::npos && is_sd(c)) out.push_back(p);
  }
  return out;
}

}  // namespace

TEST_CASE("the golden checkpoint directory lists expectations for every format") {
  std::set<std::string> formats;
  for (const auto& e : ckpt_expectations()) formats.insert(e["format"].get<std::string>());
  for (const char* f : {"torch-zip", "torch-legacy", "safetensors", "json", "broken"}) {
    INFO(f);
    CHECK(formats.count(f));
  }
}

TEST_CASE("torch.save files parse to exactly their expect.json") {
  auto cases = with_format({"torch-zip", "torch-legacy"});
  REQUIRE(!cases.empty());
  for (const auto& e : cases) {
    const std::string path = e["_path"];
    INFO(path);
    TorchObject obj = torch_load(path);
    CHECK(obj.format == e["format"].get<std::string>());
    Walk w = walk(obj.root);
    check_list(w.containers, e["containers"], path + " containers");
    check_list(w.leaves, e["leaves"], path + " leaves");
    check_tensors(w.tensors, e["tensors"], path);
    if (e.contains("n_tensors")) CHECK(w.tensors.size() == e["n_tensors"].get<size_t>());
    if (e.contains("zip_records")) {
      ZipReader zip(path);
      std::vector<std::string> names;
      for (const auto& r : zip.records()) names.push_back(r.name);
      CHECK(names == e["zip_records"].get<std::vector<std::string>>());
      CHECK(names.front().rfind(e["zip_prefix"].get<std::string>() + "/", 0) == 0);
    }
  }
}

TEST_CASE("safetensors files match their expect.json") {
  auto cases = with_format({"safetensors"});
  REQUIRE(!cases.empty());
  for (const auto& e : cases) {
    const std::string path = e["_path"];
    INFO(path);
    SafetensorsFile f(path);
    CHECK(f.header_size() == e["header_len"].get<size_t>());
    CHECK(json(f.metadata()) == e["header_metadata"]);
    std::vector<TensorAt> got;
    for (const auto& entry : f.entries()) got.push_back({entry.name, f.tensor(entry.name), false});
    check_tensors(got, e["tensors"], path);
    for (size_t i = 0; i < std::min(got.size(), e["tensors"].size()); ++i) {
      const auto& x = e["tensors"][i];
      CHECK(f.entries()[i].begin == x["data_offsets"][0].get<size_t>());
      CHECK(f.entries()[i].end == x["data_offsets"][1].get<size_t>());
      CHECK(safetensors_dtype_name(f.entries()[i].dtype) == x["st_dtype"].get<std::string>());
    }
    // load_state_dict_file dispatches on the content, not the name.
    CHECK(load_state_dict_file(path).size() == got.size());
  }
}

TEST_CASE("json files match their expect.json") {
  auto cases = with_format({"json"});
  REQUIRE(!cases.empty());
  for (const auto& e : cases) {
    const std::string path = e["_path"];
    INFO(path);
    std::ifstream in(path);
    auto doc = nlohmann::ordered_json::parse(in);
    json containers = json::array(), leaves = json::array();
    std::function<void(const nlohmann::ordered_json&, const std::string&)> visit = [&](const auto& v,
                                                                                       const std::string& p) {
      auto child = [&](const std::string& k) { return p.empty() ? k : p + "/" + k; };
      if (v.is_object()) {
        json keys = json::array();
        for (auto it = v.begin(); it != v.end(); ++it) keys.push_back(it.key());
        containers.push_back({{"path", p}, {"type", "object"}, {"keys", keys}});
        for (auto it = v.begin(); it != v.end(); ++it) visit(it.value(), child(it.key()));
      } else if (v.is_array()) {
        containers.push_back({{"path", p}, {"type", "array"}, {"len", v.size()}});
        for (size_t i = 0; i < v.size(); ++i) visit(v[i], child(std::to_string(i)));
      } else {
        const char* type = v.is_null()           ? "none"
                           : v.is_boolean()      ? "bool"
                           : v.is_number_float() ? "float"
                           : v.is_number()       ? "int"
                                                 : "str";
        leaves.push_back({{"path", p}, {"type", type}, {"value", json::parse(v.dump())}});
      }
    };
    visit(doc, "");
    check_list(containers, e["containers"], path + " containers");
    check_list(leaves, e["leaves"], path + " leaves");
  }
}

TEST_CASE("damaged checkpoints fail with an error naming the file and the problem") {
  auto cases = ckpt_expectations();
  size_t n = 0;
  for (const auto& e : cases) {
    if (!e.value("expect_error", false)) continue;
    ++n;
    const std::string path = e["_path"];
    const std::string file = std::filesystem::path(path).filename().string();
    INFO(path);
    for (int via_state_dict = 0; via_state_dict < 2; ++via_state_dict) {
      std::string message;
      try {
        if (via_state_dict) load_state_dict_file(path, "model");
        else torch_load(path);
      } catch (const Error& err) {
        message = err.what();
      }
      INFO("message: " << message);
      CHECK(message.find(file) != std::string::npos);
      const auto kind = e.value("damage_kind", "");
      if (kind == "truncated") CHECK(message.find("end of central directory not found") != std::string::npos);
      if (kind == "truncated") CHECK(message.find("truncated") != std::string::npos);
      if (kind == "corrupt_central_directory")
        CHECK(message.find("corrupt zip central directory") != std::string::npos);
    }
  }
  CHECK(n > 0);
}

TEST_CASE("load_state_dict_file returns the state dict at the root or under an entry") {
  auto cases = with_format({"torch-zip", "torch-legacy"});
  REQUIRE(!cases.empty());
  for (const auto& e : cases) {
    const std::string path = e["_path"];
    INFO(path);
    auto entries = state_dict_entries(e);
    const bool root_is_sd = std::find(entries.begin(), entries.end(), "") != entries.end();
    if (!root_is_sd) CHECK_THROWS_AS(load_state_dict_file(path), Error);
    for (const auto& entry : entries) {
      INFO("entry '" << entry << "'");
      StateDict sd = load_state_dict_file(path, entry);
      const std::string prefix = entry.empty() ? "" : entry + "/";
      std::vector<TensorAt> got;
      json want = json::array();
      for (const auto& t : e["tensors"]) {
        auto p = t["path"].get<std::string>();
        if (p.rfind(prefix, 0) != 0 || p.find('/', prefix.size()) != std::string::npos) continue;
        want.push_back(t);
      }
      REQUIRE(sd.size() == want.size());
      size_t i = 0;
      for (const auto& kv : sd) {
        CHECK(prefix + kv.key() == want[i]["path"].get<std::string>());
        CHECK(!kv.value().requires_grad());
        CHECK(dtype_name(kv.value().scalar_type()) == want[i]["dtype"].get<std::string>());
        CHECK(kv.value().sizes().vec() == want[i]["shape"].get<std::vector<int64_t>>());
        ++i;
      }
    }
    CHECK_THROWS_AS(load_state_dict_file(path, "no such entry"), Error);
  }
}

TEST_CASE("Hugging Face directories: the index matches its shards and every flavour loads") {
  size_t dirs = 0;
  for (const auto& d : std::filesystem::directory_iterator(ckpt_dir())) {
    if (!d.is_directory()) continue;
    std::filesystem::path index;
    for (const char* name : {"model.safetensors.index.json", "pytorch_model.bin.index.json"})
      if (std::filesystem::exists(d.path() / name)) index = d.path() / name;
    if (index.empty()) continue;
    ++dirs;
    INFO(d.path().string());
    std::ifstream in(index);
    auto idx = json::parse(in);
    StateDict sd = load_hf_directory(d.path());
    std::set<std::string> keys;
    for (const auto& kv : sd) keys.insert(kv.key());
    std::set<std::string> indexed;
    for (const auto& [k, v] : idx["weight_map"].items()) indexed.insert(k);
    CHECK(keys == indexed);
    // Every tensor equals its shard's expectation.
    uint64_t bytes = 0;
    for (const auto& [k, shard] : idx["weight_map"].items()) {
      std::ifstream ein(d.path() / (shard.get<std::string>() + ".expect.json"));
      REQUIRE(ein);
      auto e = json::parse(ein);
      auto it = std::find_if(e["tensors"].begin(), e["tensors"].end(), [&](const json& t) { return t["path"] == k; });
      REQUIRE(it != e["tensors"].end());
      check_tensor({k, sd[k], false}, *it, d.path().filename().string() + ": " + k);
      bytes += sd[k].numel() * sd[k].element_size();
    }
    CHECK(bytes == idx["metadata"]["total_size"].get<uint64_t>());
  }
  CHECK(dirs >= 2);
  CHECK_THROWS_AS(load_hf_directory(ckpt_dir() / "no-such-dir"), Error);
}
