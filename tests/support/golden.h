// Golden-fixture access for tests. The directory comes from CHATBRIDGE_GOLDEN_DIR (default
// tests/golden); every dim, id and config is read from the fixture itself, so the same tests run on
// any fixture set. Layout and tolerances: tests/golden/README.md.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "framework/checkpoint/safetensors.h"

namespace cb::test {

std::filesystem::path golden_dir();
// The sentencepiece model of the set's text cases, as the `tokenizer` case's config names it.
std::filesystem::path golden_tokenizer();
// The Hugging Face checkpoint directories below <golden>/ckpt (those holding a *.index.json), sorted.
std::vector<std::filesystem::path> golden_hf_dirs();

class Fixture {
 public:
  explicit Fixture(const std::string& case_name);  // <dir>/<case>.safetensors (+ <case>.json)

  bool has(const std::string& name) const { return file_.contains(name); }
  torch::Tensor get(const std::string& name) const;                           // a CPU tensor you may modify
  std::vector<std::string> names(const std::string& prefix) const;            // tensor names starting with prefix
  StateDict weights() const;                                                  // every non-input./output. tensor
  const nlohmann::json& config() const { return config_; }                    // metadata "config"
  nlohmann::json meta(const std::string& key) const;                          // a metadata entry, parsed as JSON
  const nlohmann::json& sidecar() const { return sidecar_; }                  // <case>.json ({} if absent)
  std::vector<std::string> strings(const std::string& prefix) const;          // <prefix>_utf8 + _offsets
  std::vector<std::vector<int64_t>> ragged(const std::string& prefix) const;  // <prefix> + _offsets
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  SafetensorsFile file_;
  nlohmann::json config_, sidecar_;
};

struct Tol {
  double rtol, atol;
};
namespace tol {  // tests/golden/README.md, "Tolerances"
constexpr Tol module{1e-4, 1e-5}, loss{1e-5, 1e-5}, fbank{1e-4, 1e-3}, fbank_norm{1e-4, 1e-5}, image{1e-5, 1e-5},
    traj_loss{1e-5, 1e-4}, traj_param{1e-4, 2e-5}, lr{1e-6, 0}, cider{1e-6, 0};
}

// Checks max|out-ref| <= atol + rtol*max|ref| (shapes must match) and prints the measured error as
// "[golden] <what>: max_err=... bound=..." so a run documents how close it came. Returns max_err.
double check_close(const torch::Tensor& out, const torch::Tensor& ref, Tol tol, const std::string& what);
// Exact equality for integer tensors (ids, masks, targets, uint8 images).
void check_equal(const torch::Tensor& out, const torch::Tensor& ref, const std::string& what);

}  // namespace cb::test
