#include "datasets/builders/dataset.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <random>

#include "framework/error.h"

namespace cb {
namespace {

constexpr int64_t kLoggedBadSamples = 20;  // then one warning per 100

// One pass over a map-style dataset in a seeded random order.
class ShuffledPass : public SampleStream {
 public:
  ShuffledPass(const Dataset& ds, uint64_t seed) : ds_(ds), order_(static_cast<size_t>(ds.size())) {
    std::iota(order_.begin(), order_.end(), int64_t{0});
    std::mt19937_64 rng(seed);
    std::shuffle(order_.begin(), order_.end(), rng);
  }
  std::optional<Sample> next(std::vector<BadSample>& bad) override {
    while (pos_ < order_.size()) {
      const int64_t i = order_[pos_++];
      std::vector<Sample> one = load_samples(ds_, {i}, bad);
      if (!one.empty()) return std::move(one.front());
    }
    return std::nullopt;
  }

 private:
  const Dataset& ds_;
  std::vector<int64_t> order_;
  size_t pos_ = 0;
};

torch::Tensor stack_media(const std::vector<Sample>& samples, torch::Tensor Sample::*field, const char* what,
                          const DatasetInfo& info) {
  std::vector<torch::Tensor> parts;
  parts.reserve(samples.size());
  for (const Sample& s : samples) {
    const torch::Tensor& t = s.*field;
    if (!t.defined()) fail("collate {}: sample {} has no {}", info.name(), s.id, what);
    if (!parts.empty() && t.sizes() != parts.front().sizes())
      fail("collate {}: {} of sample {} is {}, of sample {} {}", info.name(), what, s.id, c10::str(t.sizes()),
           samples.front().id, c10::str(parts.front().sizes()));
    parts.push_back(t);
  }
  return torch::stack(parts);
}

}  // namespace

std::string DatasetInfo::task() const {
  if (video && audio) return "tva";
  if (image && audio) return "tia";
  if (video) return "tv";
  if (image) return "ti";
  return "ta";
}

void Dataset::report_bad(BadSample b, std::vector<BadSample>& bad) const {
  const int64_t n = ++skipped_;
  if (n <= kLoggedBadSamples || n % 100 == 0)
    spdlog::warn("{}: skipped {} ({}); {} skipped so far", name(), b.file, b.reason, n);
  bad.push_back(std::move(b));
}

std::unique_ptr<SampleStream> Dataset::stream(uint64_t seed) const {
  return std::make_unique<ShuffledPass>(*this, seed);
}

std::filesystem::path default_cache_root() {
  if (const char* root = std::getenv("CHATBRIDGE_CACHE_ROOT"); root && *root) return root;
  return std::filesystem::current_path();
}

BuiltDatasets build_dataset(const std::string& name, const Config& section, const std::filesystem::path& cache_root) {
  return registry::get<Kind::dataset_builder>(name)(section, cache_root);
}

std::map<std::string, BuiltDatasets> build_datasets(const Config& cfg, const std::filesystem::path& cache_root) {
  std::map<std::string, BuiltDatasets> out;
  if (!cfg.has("datasets")) return out;
  const Config datasets = cfg.sub("datasets");
  for (const std::string& name : datasets.keys()) {
    out[name] = build_dataset(name, datasets.sub(name), cache_root);
    for (const auto& [split, ds] : out[name]) {
      const std::string size = ds->size() < 0 ? std::string("streamed") : std::to_string(ds->size());
      const auto& bad = ds->malformed();
      if (bad.empty()) spdlog::info("dataset {}: {} samples", ds->name(), size);
      else
        spdlog::warn("dataset {}: {} samples; {} malformed annotation records skipped, the first: {} ({})", ds->name(),
                     size, bad.size(), bad[0].reason, bad[0].file);
    }
  }
  return out;
}

std::vector<Sample> load_samples(const Dataset& ds, const std::vector<int64_t>& indices, std::vector<BadSample>& bad) {
  std::vector<Sample> out;
  out.reserve(indices.size());
  for (const int64_t i : indices) {
    try {
      out.push_back(ds.get(i));
    } catch (const std::exception& e) {
      ds.report_bad({ds.describe(i), e.what()}, bad);
    }
  }
  return out;
}

SampleBatch collate(std::vector<Sample> samples, const DatasetInfo& info, bool pin_memory) {
  SampleBatch out;
  Batch& b = out.batch;
  b.task = info.task();
  if (samples.empty()) return out;
  if (info.image || info.video) b.image = stack_media(samples, &Sample::image, "image", info);
  if (info.audio) b.audio = stack_media(samples, &Sample::audio, "audio", info);
  if (pin_memory && torch::cuda::is_available()) {
    if (b.image.defined()) b.image = b.image.pin_memory();
    if (b.audio.defined()) b.audio = b.audio.pin_memory();
  }
  for (Sample& s : samples) {
    b.text_input.push_back(std::move(s.text_input));
    b.ids.push_back(std::move(s.id));
    out.answers.push_back(std::move(s.answers));
    out.weights.push_back(std::move(s.weights));
    out.captions.push_back(std::move(s.caption));
    out.instance_ids.push_back(s.instance_id);
  }
  return out;
}

}  // namespace cb
