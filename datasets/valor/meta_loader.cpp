#include "datasets/valor/meta_loader.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <sstream>

#include "datasets/valor/distributed_sampler.h"
#include "framework/error.h"
#include "framework/runtime.h"
#include "framework/splitmix64.h"

namespace cb {
namespace {

constexpr int kMaxAttemptsPerSample = 64;  // consecutive replacements before giving up on a batch
constexpr int64_t kMinTriesForFraction = 100;
constexpr int64_t kLoggedBadSamples = 10;  // then one warning per 100

std::string rng_to_string(const std::mt19937_64& rng) {
  std::ostringstream s;
  s << rng;
  return s.str();
}

std::string counter_key(const SubLoader& l, const ValorDataset& d) { return l.name + "/" + d.name(); }

}  // namespace

MetaLoader::MetaLoader(std::vector<SubLoader> loaders, MetaLoaderOptions opts)
    : loaders_(std::move(loaders)), opts_(opts) {
  if (loaders_.empty()) fail("valor data: no loaders");
  if (opts_.accum_steps < 1) fail("valor data: gradient_accumulation_steps must be >= 1");
  // Outside [0, 1] the check below would stop a run with no bad sample at all (or never judge).
  if (!(opts_.max_bad_fraction >= 0 && opts_.max_bad_fraction <= 1))
    fail("run.max_bad_sample_fraction must be between 0 and 1, got {}", opts_.max_bad_fraction);
  size_t workers = 0;
  for (size_t i = 0; i < loaders_.size(); ++i) {
    const SubLoader& l = loaders_[i];
    if (l.shards) {
      // A stream's size is unknown: the bad fraction is judged after kMinTriesForFraction tries.
      for (const auto& d : l.shards->dataset_names()) {
        const std::string key = l.name + "/" + d;
        counters_[key], malformed_[key] = 0, dataset_sizes_[key] = kMinTriesForFraction;
      }
    } else if (l.datasets.empty()) {
      fail("loader {}: no datasets", l.name);
    }
    for (const auto& d : l.datasets) {
      if (d->has_video() != l.datasets[0]->has_video() || d->has_audio() != l.datasets[0]->has_audio() ||
          d->frames() != l.datasets[0]->frames())
        fail("loader {}: datasets {} and {} give different media and cannot share a batch", l.name,
             l.datasets[0]->name(), d->name());
      const std::string key = counter_key(l, *d);
      // Malformed annotation records count as tried-and-skipped samples.
      SkipCount& c = counters_[key];
      c.tried = c.bad = malformed_[key] = static_cast<int64_t>(d->malformed().size());
      dataset_sizes_[key] = d->size() + c.tried;
      for (size_t k = 0; k < d->malformed().size() && static_cast<int64_t>(k) < kLoggedBadSamples; ++k)
        spdlog::warn("loader {}: skipping an annotation of {}: {} ({})", l.name, d->name(), d->malformed()[k].reason,
                     d->malformed()[k].file);
    }
    if (!l.shards && batches_per_epoch(i) < 1) {
      int64_t total = 0;
      std::vector<std::string> files;  // where the records came from, e.g. an empty annotation file
      for (const auto& d : l.datasets) {
        total += d->size();
        files.push_back(fmt::format("{}: {} usable, {} malformed records", d->annotation_file().string(), d->size(),
                                    d->malformed().size()));
      }
      fail("loader {}: {} usable samples give rank {} fewer than one batch of {} (global batch_size / world_size); {}",
           l.name, total, opts_.rank, l.batch_size, fmt::join(files, "; "));
    }
    if (l.weight < 0) fail("loader {}: negative mixing weight", l.name);
    total_weight_ += l.weight;
    workers = std::max<size_t>(workers, static_cast<size_t>(l.n_workers));
  }
  if (!opts_.round_robin && total_weight_ <= 0) fail("valor data: every loader has mixing weight 0");
  cache_.resize(loaders_.size());
  planned_.mix_rng.seed(static_cast<uint64_t>(opts_.seed));
  planned_.sampler_epoch.assign(loaders_.size(), 0);
  planned_.batch.assign(loaders_.size(), 0);
  planned_.cursors.resize(loaders_.size());
  for (size_t i = 0; i < loaders_.size(); ++i)
    if (loaders_[i].shards) planned_.cursors[i] = loaders_[i].shards->initial_states();
  consumed_ = planned_;
  // One shared pool sized by the largest n_workers; two batches in flight per worker, as DataLoader's
  // default prefetch_factor.
  depth_ = 2 * workers;
  if (workers > 0) workers_ = std::make_unique<WorkerPool>(workers, single_threaded_ops);
}

int64_t MetaLoader::batches_per_epoch(size_t loader) const {
  int64_t total = 0;
  for (const auto& d : loaders_[loader].datasets) total += d->size();
  if (total == 0) return 0;
  const int64_t per_rank = (total + opts_.world_size - 1) / opts_.world_size;
  return per_rank / loaders_[loader].batch_size;  // drop_last
}

MetaLoader::Job MetaLoader::advance(Position& p) const {
  if (opts_.round_robin) {
    p.current = p.step % loaders_.size();
  } else if (p.step % opts_.accum_steps == 0) {
    // random.choice over a pool holding each loader `weight` times.
    int64_t u = static_cast<int64_t>(p.mix_rng() % static_cast<uint64_t>(total_weight_));
    size_t i = 0;
    while (u >= loaders_[i].weight) u -= loaders_[i++].weight;
    p.current = i;
  }
  ++p.step;
  const size_t l = p.current;
  if (loaders_[l].shards) return Job{l, 0, p.batch[l]++};
  if (p.batch[l] >= batches_per_epoch(l)) {
    ++p.epoch;
    p.sampler_epoch[l] = p.epoch;
    p.batch[l] = 0;
  }
  return Job{l, p.sampler_epoch[l], p.batch[l]++};
}

std::shared_ptr<const std::vector<int64_t>> MetaLoader::indices(size_t loader, int64_t epoch) const {
  std::lock_guard lock(cache_mutex_);
  auto& cache = cache_[loader];
  if (auto it = cache.find(epoch); it != cache.end()) return it->second;
  int64_t total = 0;
  for (const auto& d : loaders_[loader].datasets) total += d->size();
  auto order = std::make_shared<const std::vector<int64_t>>(
      distributed_sampler_indices(total, epoch, opts_.rank, opts_.world_size));
  if (cache.size() >= 2) cache.erase(cache.begin());  // epochs only grow
  cache.emplace(epoch, order);
  return order;
}

void MetaLoader::load_shard_batch(const Job& job, ImageDecoder& decoder, Result& r,
                                  std::vector<torch::Tensor>& images) const {
  const SubLoader& l = loaders_[job.loader];
  ShardBatch b = l.shards->next_batch(job.batch, l.batch_size, decoder);
  for (auto& [dataset, n] : b.tried) r.tried[l.name + "/" + dataset] += n;
  for (auto& bad : b.bad) r.bad.push_back({l.name + "/" + bad.dataset, std::move(bad.file), std::move(bad.reason)});
  for (ValorSample& s : b.samples) {
    r.batch.ids.push_back(std::move(s.id));
    r.batch.text_input.push_back(std::move(s.text));
    images.push_back(s.image);
  }
  r.cursor.emplace(static_cast<size_t>(job.batch % l.shards->readers()), b.after);
}

void MetaLoader::load_file_batch(const Job& job, ImageDecoder& decoder, Result& r, std::vector<torch::Tensor>& images,
                                 std::vector<torch::Tensor>& audios) const {
  const SubLoader& l = loaders_[job.loader];
  const auto order = indices(job.loader, job.sampler_epoch);
  for (int64_t p = job.batch * l.batch_size; p < (job.batch + 1) * l.batch_size; ++p) {
    // ConcatDataset: find the dataset holding the global index.
    int64_t index = (*order)[p];
    size_t d = 0;
    while (index >= l.datasets[d]->size()) index -= l.datasets[d++]->size();
    const ValorDataset& ds = *l.datasets[d];
    const std::string key = counter_key(l, ds);
    std::mt19937_64 rng(
        splitmix64_combine({opts_.seed, opts_.rank, static_cast<int64_t>(job.loader), job.sampler_epoch, p}));
    for (int attempt = 0;; ++attempt) {
      ++r.tried[key];
      try {
        ValorSample s = ds.load(index, rng, decoder);
        r.batch.ids.push_back(s.id);
        (l.conversation ? r.batch.conversation : r.batch.text_input).push_back(std::move(s.text));
        if (s.image.defined()) images.push_back(s.image);
        if (s.audio.defined()) audios.push_back(s.audio);
        break;
      } catch (const std::exception& e) {
        r.bad.push_back({key, ds.describe(index), e.what()});
        if (attempt + 1 >= kMaxAttemptsPerSample)
          fail("loader {}: {} samples of dataset {} in a row could not be loaded; last: {} ({})", l.name,
               kMaxAttemptsPerSample, ds.name(), r.bad.back().file, r.bad.back().reason);
        // As the original: another random sample of the same dataset instead.
        index = std::uniform_int_distribution<int64_t>(0, ds.size() - 1)(rng);
      }
    }
  }
}

MetaLoader::Result MetaLoader::load_batch(const Job& job) const {
  thread_local ImageDecoder decoder;
  const SubLoader& l = loaders_[job.loader];
  Result r;
  std::vector<torch::Tensor> images, audios;
  r.batch.task = l.task;
  if (l.shards) load_shard_batch(job, decoder, r, images);
  else load_file_batch(job, decoder, r, images, audios);
  // valor_collate / task_collate: per-modality tensors stacked along a new batch dimension.
  try {
    if (!images.empty()) r.batch.image = torch::stack(images);  // [B, n, 3, S, S]
    if (!audios.empty()) r.batch.audio = torch::stack(audios);  // [B, n, T, F]
    if (opts_.pin_memory && torch::cuda::is_available()) {
      if (r.batch.image.defined()) r.batch.image = r.batch.image.pin_memory();
      if (r.batch.audio.defined()) r.batch.audio = r.batch.audio.pin_memory();
    }
  } catch (const c10::Error& e) {
    fail("loader {}: samples of one batch have different shapes (all frames of a video must share one size): {}",
         l.name, e.what_without_backtrace());
  }
  return r;
}

void MetaLoader::fill() {
  while (pending_.size() < depth_) {
    const Job job = advance(planned_);
    pending_.push_back({workers_->submit([this, job] { return load_batch(job); }), planned_});
  }
}

void MetaLoader::drain() {
  // Jobs not started report broken promises, ignored here like the errors of the others.
  if (workers_) workers_->cancel_queued();
  for (auto& p : pending_) {
    try {
      p.result.get();
    } catch (...) {
    }
  }
  pending_.clear();
}

void MetaLoader::update_skip_counters(const Result& r) {
  for (const auto& [key, n] : r.tried) counters_[key].tried += n;
  for (const Bad& b : r.bad) {
    SkipCount& c = counters_[b.dataset];
    ++c.bad;
    // Malformed records count as bad but were logged at load time: they must not use up the warnings
    // for unreadable media, which would then stay silent until the 100th.
    const int64_t unreadable = c.bad - malformed_.at(b.dataset);
    if (unreadable <= kLoggedBadSamples || unreadable % 100 == 0)
      spdlog::warn("{}: skipped {} ({}); {} of {} samples skipped so far", b.dataset, b.file, b.reason, c.bad, c.tried);
  }
  for (const auto& [key, c] : counters_) {
    const int64_t min_tries = std::min(kMinTriesForFraction, dataset_sizes_.at(key));
    if (c.tried >= min_tries && static_cast<double>(c.bad) > opts_.max_bad_fraction * static_cast<double>(c.tried))
      fail(
          "{}: {} of {} samples tried were bad, more than run.max_bad_sample_fraction = {} (see the warnings above "
          "for files and reasons)",
          key, c.bad, c.tried, opts_.max_bad_fraction);
  }
}

Batch MetaLoader::next() {
  Result r;
  Position after;
  if (depth_ == 0) {
    after = consumed_;
    r = load_batch(advance(after));
  } else {
    fill();
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    after = std::move(p.after);
    r = p.result.get();
  }
  // Shard positions are known once a batch is built: the planned position does not carry them.
  after.cursors = std::move(consumed_.cursors);
  if (r.cursor) after.cursors[after.current][r.cursor->first] = r.cursor->second;
  consumed_ = std::move(after);
  update_skip_counters(r);
  if (depth_ > 0) fill();
  return std::move(r.batch);
}

nlohmann::json MetaLoader::state() const {
  nlohmann::json s;
  for (const auto& l : loaders_) s["loaders"].push_back(l.name);
  s["step"] = consumed_.step;
  s["epoch"] = consumed_.epoch;
  s["current"] = consumed_.current;
  s["mix_rng"] = rng_to_string(consumed_.mix_rng);
  s["sampler_epoch"] = consumed_.sampler_epoch;
  s["batch"] = consumed_.batch;
  // Only with shard loaders, so that the state of file-only mixtures keeps its form.
  if (std::any_of(loaders_.begin(), loaders_.end(), [](const SubLoader& l) { return l.shards != nullptr; }))
    s["shard_cursors"] = consumed_.cursors;
  for (const auto& [key, c] : counters_) s["skipped"][key] = {{"tried", c.tried}, {"bad", c.bad}};
  s["rank"] = opts_.rank;
  s["world_size"] = opts_.world_size;
  return s;
}

void MetaLoader::restore(const nlohmann::json& s) {
  std::vector<std::string> names;
  for (const auto& l : loaders_) names.push_back(l.name);
  try {
    if (s.at("loaders").get<std::vector<std::string>>() != names)
      fail("data loader state: saved loaders {} differ from the configured {}", s.at("loaders").dump(),
           nlohmann::json(names).dump());
    if (s.at("world_size").get<int>() != opts_.world_size)
      fail("data loader state: saved with world size {}, resuming with {}", s.at("world_size").get<int>(),
           opts_.world_size);
    Position p;
    p.step = s.at("step").get<uint64_t>();
    p.epoch = s.at("epoch").get<int64_t>();
    p.current = s.at("current").get<size_t>();
    std::istringstream rng(s.at("mix_rng").get<std::string>());
    rng >> p.mix_rng;
    if (!rng) fail("data loader state: unreadable mix_rng");
    p.sampler_epoch = s.at("sampler_epoch").get<std::vector<int64_t>>();
    p.batch = s.at("batch").get<std::vector<int64_t>>();
    if (p.sampler_epoch.size() != loaders_.size() || p.batch.size() != loaders_.size() || p.current >= loaders_.size())
      fail("data loader state: per-loader lists do not match the {} loaders", loaders_.size());
    p.cursors.resize(loaders_.size());
    for (size_t i = 0; i < loaders_.size(); ++i)
      if (loaders_[i].shards) {
        if (!s.contains("shard_cursors"))
          fail("data loader state: no shard positions saved for loader {}", loaders_[i].name);
        p.cursors[i] = s.at("shard_cursors").at(i).get<std::vector<ReaderState>>();
        if (p.cursors[i].size() != static_cast<size_t>(loaders_[i].shards->readers()))
          fail(
              "data loader state: loader {} was saved with {} shard readers, this run has {} (n_workers, the number "
              "of ranks or the shards changed)",
              loaders_[i].name, p.cursors[i].size(), loaders_[i].shards->readers());
      }
    std::map<std::string, SkipCount> counters = counters_;
    if (s.contains("skipped"))
      for (const auto& [key, c] : s["skipped"].items())
        counters[key] = {c.at("tried").get<int64_t>(), c.at("bad").get<int64_t>()};
    drain();
    for (size_t i = 0; i < loaders_.size(); ++i)
      if (loaders_[i].shards) loaders_[i].shards->reset(p.cursors[i], p.batch[i]);
    planned_ = consumed_ = std::move(p);
    counters_ = std::move(counters);
  } catch (const nlohmann::json::exception& e) {
    fail("data loader state: malformed ({})", e.what());
  }
}

}  // namespace cb
