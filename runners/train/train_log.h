// Progress reporting of the runner (runners/runner_base.py and its MetricLogger, extended): one log line per log_freq
// iterations with epoch, step, loss (that step's and the mean since the last line), lr, throughput,
// memory and ETA; the same values as one JSON line in <output_dir>/metrics.jsonl and, with
// run.tensorboard, as TensorBoard scalars "train/<key>" at the same step; validation metrics likewise
// (a line {"epoch", "step", "split": S, "S_<metric>": ...} as the original's log_stats, and scalars
// "S/<metric>"); a progress bar on stderr only when it is a terminal. Rank 0 only.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "runners/train/tensorboard_writer.h"

namespace cb {

struct StepRecord {
  int64_t epoch = 0, iter = 0, iters_per_epoch = 0;  // iter: 0-based within the epoch
  int64_t step = 0, total_steps = 0;                 // global, 0-based
  double loss = 0, lr = 0;
  int64_t samples = 0, tokens = 0;  // in this iteration, summed over ranks
};

class TrainLog {
 public:
  // Appends to metrics.jsonl when `metrics_dir` is non-empty (a resumed run continues the file); writes
  // event files under `tensorboard_dir` when it is non-empty.
  TrainLog(const std::filesystem::path& metrics_dir, int64_t log_freq, bool main_rank,
           const std::filesystem::path& tensorboard_dir = {});
  void record(const StepRecord& r);  // call every iteration
  // One evaluation of `split` (a valid split, or <split>_epoch<label> for a test split) after `epoch`, at
  // the global step of its last iteration; `metrics` holds the split's figures (numbers go to TensorBoard).
  void record_validation(const std::string& split, int64_t epoch, int64_t step, const nlohmann::json& metrics);
  void finish_bar();

 private:
  using Clock = std::chrono::steady_clock;
  int64_t log_freq_;
  bool main_, bar_;
  std::ofstream metrics_;
  std::optional<TensorBoardWriter> tb_;
  Clock::time_point start_, window_start_;
  int64_t steps_done_ = 0, window_samples_ = 0, window_tokens_ = 0, window_steps_ = 0, window_loss_steps_ = 0;
  double window_loss_ = 0;  // sum of the finite losses since the last logged line
};

}  // namespace cb
