#include "tests/support/golden.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>

namespace cb::test {

std::filesystem::path golden_dir() {
  if (const char* d = std::getenv("CHATBRIDGE_GOLDEN_DIR"); d && *d) return d;
  return std::filesystem::path(CHATBRIDGE_SOURCE_DIR) / "tests" / "golden";
}

std::filesystem::path golden_tokenizer() {
  return golden_dir() / Fixture("tokenizer").config().at("tokenizer").get<std::string>();
}

std::vector<std::filesystem::path> golden_hf_dirs() {
  std::vector<std::filesystem::path> out;
  for (const auto& d : std::filesystem::directory_iterator(golden_dir() / "ckpt")) {
    if (!d.is_directory()) continue;
    for (const auto& f : std::filesystem::directory_iterator(d.path()))
      if (f.path().filename().string().ends_with(".index.json")) {
        out.push_back(d.path());
        break;
      }
  }
  std::sort(out.begin(), out.end());
  return out;
}

static SafetensorsFile open_case(const std::string& name) {
  auto p = golden_dir() / (name + ".safetensors");
  if (!std::filesystem::exists(p)) FAIL("golden case '" << name << "' not found: " << p.string());
  return SafetensorsFile(p);
}

Fixture::Fixture(const std::string& case_name) : name_(case_name), file_(open_case(case_name)) {
  auto m = file_.metadata();
  if (m.count("config")) config_ = nlohmann::json::parse(m.at("config"));
  std::ifstream side(golden_dir() / (case_name + ".json"));
  sidecar_ = side ? nlohmann::json::parse(side) : nlohmann::json::object();
}

torch::Tensor Fixture::get(const std::string& name) const {
  if (!file_.contains(name)) FAIL("golden case '" << name_ << "' has no tensor '" << name << "'");
  return file_.tensor(name).clone();
}

std::vector<std::string> Fixture::names(const std::string& prefix) const {
  std::vector<std::string> out;
  for (const auto& e : file_.entries())
    if (e.name.rfind(prefix, 0) == 0) out.push_back(e.name);
  return out;
}

StateDict Fixture::weights() const {
  StateDict sd;
  for (const auto& e : file_.entries())
    if (e.name.rfind("input.", 0) != 0 && e.name.rfind("output.", 0) != 0) sd.insert(e.name, get(e.name));
  return sd;
}

nlohmann::json Fixture::meta(const std::string& key) const {
  const auto& m = file_.metadata();
  auto it = m.find(key);
  if (it == m.end()) FAIL("golden case '" << name_ << "' has no metadata '" << key << "'");
  auto j = nlohmann::json::parse(it->second, nullptr, false);
  return j.is_discarded() ? nlohmann::json(it->second) : j;
}

std::vector<std::string> Fixture::strings(const std::string& prefix) const {
  auto bytes = get(prefix + "_utf8").contiguous();
  auto off = get(prefix + "_offsets").contiguous();
  auto* b = reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>());
  auto* o = off.data_ptr<int64_t>();
  std::vector<std::string> out;
  for (int64_t i = 0; i + 1 < off.numel(); ++i) out.emplace_back(b + o[i], size_t(o[i + 1] - o[i]));
  return out;
}

std::vector<std::vector<int64_t>> Fixture::ragged(const std::string& prefix) const {
  auto flat = get(prefix).contiguous();
  auto off = get(prefix + "_offsets").contiguous();
  auto* f = flat.data_ptr<int64_t>();
  auto* o = off.data_ptr<int64_t>();
  std::vector<std::vector<int64_t>> out;
  for (int64_t i = 0; i + 1 < off.numel(); ++i) out.emplace_back(f + o[i], f + o[i + 1]);
  return out;
}

double check_close(const torch::Tensor& out, const torch::Tensor& ref, Tol tol, const std::string& what) {
  INFO(what);
  REQUIRE(out.sizes() == ref.sizes());
  auto o = out.detach().to(torch::kCPU, torch::kFloat64);
  auto r = ref.detach().to(torch::kCPU, torch::kFloat64);
  double err = (o - r).abs().max().item<double>();
  double bound = tol.atol + tol.rtol * r.abs().max().item<double>();
  std::printf("[golden] %s: max_err=%.3g bound=%.3g\n", what.c_str(), err, bound);
  CHECK(err <= bound);
  return err;
}

void check_equal(const torch::Tensor& out, const torch::Tensor& ref, const std::string& what) {
  INFO(what << "\nout=" << out << "\nref=" << ref);
  REQUIRE(out.sizes() == ref.sizes());
  CHECK(torch::equal(out.to(torch::kCPU, torch::kInt64), ref.to(torch::kCPU, torch::kInt64)));
}

}  // namespace cb::test
