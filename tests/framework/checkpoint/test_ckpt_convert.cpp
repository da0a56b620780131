// Conversion to safetensors (library and chatbridge-convert) on the golden checkpoint fixtures.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <cstdio>

#include "framework/checkpoint/convert.h"
#include "framework/checkpoint/load.h"
#include "framework/checkpoint/safetensors.h"
#include "framework/error.h"
#include "tests/framework/checkpoint/expect.h"

using namespace cb;
using nlohmann::json;

namespace {

struct TempDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("cb_ckpt_convert_" + std::to_string(::getpid()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// Runs a shell command; returns (exit status, stdout).
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t nl; (nl = s.find('\n', start)) != std::string::npos; start = nl + 1)
    out.push_back(s.substr(start, nl - start));
  return out;
}

bool is_torch_file(const json& e) { return e["format"] == "torch-zip" || e["format"] == "torch-legacy"; }

// Whether the file's root is a dict with an entry "model" (LAVIS/BEATs/runner layout).
bool has_model_entry(const json& e) {
  const auto& root_keys = e["containers"].at(0)["keys"];
  return std::find(root_keys.begin(), root_keys.end(), "model") != root_keys.end();
}

void check_same(const StateDict& a, const StateDict& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a.keys()[i]);
    CHECK(a.keys()[i] == b.keys()[i]);
    CHECK(a.values()[i].scalar_type() == b.values()[i].scalar_type());
    CHECK(torch::equal(a.values()[i], b.values()[i]));
  }
}

}  // namespace

TEST_CASE("byte sizes parse like Hugging Face's max_shard_size") {
  CHECK(parse_byte_size("5GB") == 5000000000ull);
  CHECK(parse_byte_size("500mb") == 500000000ull);
  CHECK(parse_byte_size("2GiB") == (2ull << 30));
  CHECK(parse_byte_size("123") == 123);
  CHECK_THROWS_AS(parse_byte_size("5XB"), Error);
  CHECK_THROWS_AS(parse_byte_size("GB"), Error);
}

TEST_CASE("torch.save -> sharded safetensors -> the same tensors") {
  TempDir tmp;
  size_t converted = 0;
  for (const auto& e : cb::test::ckpt_expectations()) {
    if (!is_torch_file(e)) continue;
    const std::string path = e["_path"];
    // The state dict: the root, else the entry "model".
    const std::string entry = has_model_entry(e) ? "model" : "";
    StateDict sd;
    try {
      sd = load_state_dict_file(path, entry);
    } catch (const Error&) {
      continue;  // e.g. features*.pth: not a state dict
    }
    INFO(path);
    ++converted;
    uint64_t total = 0;
    for (const auto& kv : sd) total += kv.value().numel() * kv.value().element_size();
    const auto dir = tmp.path / std::filesystem::path(path).filename();
    auto files = save_safetensors_sharded(sd, dir, total / 3 + 1);
    CHECK(files.size() >= 4);  // >= 3 shards + index
    check_same(sd, load_hf_directory(dir));
    const auto single = tmp.path / (std::filesystem::path(path).filename().string() + "-single");
    CHECK(save_safetensors_sharded(sd, single, 0).size() == 1);
    check_same(sd, load_state_dict_file(single / "model.safetensors"));
  }
  CHECK(converted >= 3);
}

TEST_CASE("chatbridge-convert --inspect lists every tensor and the totals") {
  size_t inspected = 0;
  for (const auto& e : cb::test::ckpt_expectations()) {
    if (!is_torch_file(e)) continue;
    const std::string path = e["_path"];
    INFO(path);
    ++inspected;
    auto [code, out] = run(std::string(CHATBRIDGE_CONVERT_BIN) + " --log-level warn --inspect " + path);
    CHECK(code == 0);
    auto ls = lines(out);
    REQUIRE(ls.size() == e["tensors"].size() + 1);
    uint64_t elements = 0, bytes = 0;
    for (size_t i = 0; i < e["tensors"].size(); ++i) {
      const auto& t = e["tensors"][i];
      auto shape = t["shape"].get<std::vector<int64_t>>();
      std::string dims;
      for (size_t d = 0; d < shape.size(); ++d) dims += (d ? ", " : "") + std::to_string(shape[d]);
      CHECK(ls[i].rfind(t["path"].get<std::string>() + "\t", 0) == 0);
      CHECK(ls[i].substr(ls[i].rfind('\t') + 1) == "[" + dims + "]");
      elements += t["numel"].get<uint64_t>();
      bytes += t["numel"].get<uint64_t>() * (t["dtype"] == "float32" || t["dtype"] == "int32"      ? 4
                                             : t["dtype"] == "int64" || t["dtype"] == "float64"    ? 8
                                             : t["dtype"] == "float16" || t["dtype"] == "bfloat16" ? 2
                                                                                                   : 1);
    }
    CHECK(ls.back() == fmt::format("{} tensors, {} parameters, {} bytes", e["tensors"].size(), elements, bytes));
  }
  CHECK(inspected > 0);
}

TEST_CASE("chatbridge-convert writes safetensors from a file's model entry") {
  TempDir tmp;
  size_t converted = 0;
  for (const auto& e : cb::test::ckpt_expectations()) {
    if (!is_torch_file(e) || !has_model_entry(e)) continue;
    const std::string path = e["_path"];
    INFO(path);
    ++converted;
    const auto out = tmp.path / (std::filesystem::path(path).filename().string() + ".safetensors");
    auto [code, text] =
        run(std::string(CHATBRIDGE_CONVERT_BIN) + " --log-level warn --entry model -o " + out.string() + " " + path);
    CHECK(code == 0);
    check_same(load_state_dict_file(path, "model"), load_state_dict_file(out));
  }
  CHECK(converted > 0);
}

TEST_CASE("chatbridge-convert fails on a damaged file with one error line naming it, writing nothing") {
  TempDir tmp;
  size_t damaged = 0;
  for (const auto& e : cb::test::ckpt_expectations()) {
    if (!e.value("expect_error", false)) continue;
    const std::string path = e["_path"];
    INFO(path);
    ++damaged;
    const auto out = tmp.path / "x.safetensors";
    auto [code, text] =
        run(std::string(CHATBRIDGE_CONVERT_BIN) + " --log-level warn -o " + out.string() + " " + path + " 2>&1");
    CHECK(code == 1);
    auto ls = lines(text);
    REQUIRE(ls.size() == 1);
    CHECK(ls[0].find(std::filesystem::path(path).filename().string()) != std::string::npos);
    CHECK(ls[0].find("error") != std::string::npos);
    CHECK(!std::filesystem::exists(out));
  }
  CHECK(damaged > 0);
}
