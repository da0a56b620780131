// The valor MetaLoader (custom_datasets/valor_data/loader.py) as a cb::BatchSource:
// an infinite mixture of loaders, one loader per step (chosen with probability weight/Σweights, kept
// for accum_steps steps, or cycled for round-robin), each loader a DistributedSampler over its
// concatenated datasets with drop_last batches. One epoch counter is shared by all loaders, as in the
// original: when a loader runs out, the counter goes up and that loader reshuffles with it.
//
// Every rank draws the same loader sequence (the mixing RNG is seeded with `seed`, i.e. rank 0's
// seed + rank that the original broadcasts), so no communication is needed. Batches are assembled by
// worker threads ahead of time; each sample's random choices come from an RNG derived from (seed,
// rank, loader, epoch, position), so batches do not depend on the thread timing, and state() after
// k batches restores to the (k+1)-th batch exactly.
//
// A loader of webdataset shards (SubLoader::shards) is a stream instead: it takes no part in the
// shared epoch counter, its batch j comes from shard reader j mod readers, and the state keeps each
// reader's shard position and shuffle buffer (webdataset_images.h).
//
// A sample whose media cannot be loaded is replaced by a random other sample of the same dataset (as
// the original), and counted with its file and reason; next() throws cb::Error once a dataset's
// skipped fraction exceeds max_bad_fraction (judged after min(100, dataset size) tries).
#pragma once
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "datasets/batch_source.h"
#include "datasets/valor/valor_dataset.h"
#include "datasets/valor/webdataset_images.h"
#include "framework/worker_pool.h"

namespace cb {

struct SubLoader {
  std::string name;  // "<task>--<dataset names>"
  std::string task;
  std::vector<std::shared_ptr<const ValorDataset>> datasets;  // concatenated
  std::shared_ptr<WebdatasetImages> shards;                   // instead of `datasets`: streamed tar shards
  int64_t batch_size = 1;                                     // per rank
  int64_t weight = 1;                                         // mixing weight (steps)
  int64_t n_workers = 0;
  bool conversation = false;  // stage 2: texts go to Batch::conversation
};

struct MetaLoaderOptions {
  int rank = 0, world_size = 1;
  int64_t seed = 42;
  int64_t accum_steps = 1;   // gradient_accumulation_steps
  bool round_robin = false;  // dataset_mix_type accum / round-robin
  double max_bad_fraction = 0.1;
  // Page-locked batches (run.pin_memory), built by the worker threads so that the host-to-device copy
  // can be asynchronous; only when CUDA is available, as DataLoader's pin_memory.
  bool pin_memory = false;
};

class MetaLoader : public BatchSource {
 public:
  MetaLoader(std::vector<SubLoader> loaders, MetaLoaderOptions opts);

  Batch next() override;
  nlohmann::json state() const override;
  void restore(const nlohmann::json& state) override;

  // Per dataset ("<loader>/<dataset>").
  std::map<std::string, SkipCount> skip_counts() const override { return counters_; }

 private:
  // Where the mixture stands: which batch comes next from which loader.
  struct Position {
    uint64_t step = 0;
    int64_t epoch = 0;   // the shared counter
    size_t current = 0;  // loader of the running accumulation window
    std::mt19937_64 mix_rng;
    std::vector<int64_t> sampler_epoch, batch;
    // Per loader, per shard reader (empty for indexed loaders); kept up to date in consumed_ only.
    std::vector<std::vector<ReaderState>> cursors;
  };
  struct Job {
    size_t loader;
    int64_t sampler_epoch, batch;
  };
  struct Bad {
    std::string dataset, file, reason;
  };
  struct Result {
    Batch batch;
    std::vector<Bad> bad;
    std::map<std::string, int64_t> tried;
    // A shard loader's batch: where its reader stands after it.
    std::optional<std::pair<size_t, ReaderState>> cursor;  // (reader, state)
  };
  struct Pending {
    std::future<Result> result;
    Position after;
  };

  Job advance(Position& p) const;
  // Loads the job's samples and collates them; any thread.
  Result load_batch(const Job& job) const;
  // A file loader's samples, the unloadable ones replaced by random others of their dataset.
  void load_file_batch(const Job& job, ImageDecoder& decoder, Result& r, std::vector<torch::Tensor>& images,
                       std::vector<torch::Tensor>& audios) const;
  // A shard loader's: the reader's next usable samples.
  void load_shard_batch(const Job& job, ImageDecoder& decoder, Result& r, std::vector<torch::Tensor>& images) const;
  std::shared_ptr<const std::vector<int64_t>> indices(size_t loader, int64_t epoch) const;
  int64_t batches_per_epoch(size_t loader) const;
  void fill();
  void drain();
  // Adds a batch's tried and skipped samples to the counters; throws once a dataset skips too many.
  void update_skip_counters(const Result& r);

  std::vector<SubLoader> loaders_;
  MetaLoaderOptions opts_;
  int64_t total_weight_ = 0;
  Position planned_, consumed_;
  std::map<std::string, SkipCount> counters_;
  std::map<std::string, int64_t> dataset_sizes_;
  std::map<std::string, int64_t> malformed_;  // per dataset: records dropped at load, logged there
  std::deque<Pending> pending_;

  // Sampler orders, cached per loader for the epochs in use.
  mutable std::mutex cache_mutex_;
  mutable std::vector<std::map<int64_t, std::shared_ptr<const std::vector<int64_t>>>> cache_;

  // Batches in flight and the threads that build them (none when every loader has n_workers 0:
  // batches are then built in next()). Declared last: stopped before the members its jobs read.
  size_t depth_ = 0;
  std::unique_ptr<WorkerPool> workers_;
};

}  // namespace cb
