// What the runner pulls batches from. The original's training loaders (the valor MetaLoader) are
// infinite: epochs are counted by the runner (iters_per_epoch), not by the data. A source is
// deterministic given (seed, rank, world size) and its state: restoring a saved state continues with
// the next batch that was not yet handed out, so a resumed run sees exactly the batches an
// uninterrupted one would.
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <string>

#include "framework/batch.h"

namespace cb {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // The next batch (its `task` names the dataset's task, e.g. "ti", "ta", "tva-conv").
  // Throws cb::Error when the data cannot go on (e.g. too many bad samples), naming the dataset.
  virtual Batch next() = 0;
  // Position, RNG state and skip counters, as JSON a checkpoint can store.
  virtual nlohmann::json state() const = 0;
  virtual void restore(const nlohmann::json& state) = 0;

  // Per dataset: the samples tried, and those skipped as unreadable, on this rank since the run began
  // (a resumed run's included). Empty for a source that skips nothing.
  struct SkipCount {
    int64_t tried = 0, bad = 0;
  };
  virtual std::map<std::string, SkipCount> skip_counts() const { return {}; }
};

}  // namespace cb
