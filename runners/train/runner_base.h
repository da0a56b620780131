// The training runner (RunnerBase of the original, runners/runner_base.py): `run.max_epoch` virtual epochs of
// `run.iters_per_epoch` iterations over an infinite batch source; the LR schedule set before every
// iteration; the loss (not divided) back-propagated every iteration and AdamW stepped every
// `accum_grad_iters`; AMP; data parallelism over a c10d group (initial trainable parameters broadcast
// from rank 0, gradients averaged by GradSync); rank-0 logs, metrics.jsonl and checkpoints.
//
// Beyond the original: checkpoints also mid-epoch (`run.save_every_iters`) with everything an exact
// resume needs (training_checkpoint.h), `keep_last_checkpoints`, SIGTERM or SIGINT (Ctrl-C) = save at
// the next optimiser step and stop (a second Ctrl-C exits at once). The model's own per-step RNG
// (ChatBridge's task alternatives) is reseeded from (seed, rank, step) every iteration, so it needs no
// saved state. At the end of a completed run, rank 0 lets the task export what later stages read
// (Task::finish).
//
// Validation as the original's (run.valid_splits after each epoch, checkpoint_best, run.test_splits at
// the end: validation.h); with run.tensorboard, TensorBoard event files under <output_dir>/tb
// (train_log.h); at the end of a run or a stop, the loss and learning-rate curves of metrics.jsonl as
// <output_dir>/loss_lr.svg (loss_plot.h).
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datasets/batch_source.h"
#include "framework/config.h"
#include "framework/distributed/process_group.h"
#include "framework/registry.h"
#include "runners/train/task.h"

namespace cb {

struct RunnerInputs {
  Config cfg;  // the resolved experiment config
  std::shared_ptr<const Task> task;
  std::shared_ptr<torch::nn::Module> model;     // what the task trains (Task::build_model)
  std::unique_ptr<BatchSource> source;          // this rank's
  std::shared_ptr<dist::ProcessGroup> pg;       // its device() is where the run computes
  std::optional<std::filesystem::path> resume;  // checkpoint directory to continue from
};

struct TrainResult {
  std::vector<double> losses;  // per iteration run by this process (mean over ranks)
  int64_t global_step = 0;     // iterations done in total, resumed ones included
  int stop_signal = 0;         // SIGTERM or SIGINT when that stopped the run (after saving), else 0
};

class Runner {
 public:
  virtual ~Runner() = default;
  virtual TrainResult train() = 0;
};

template <>
struct FactoryOf<Kind::runner> {
  using type = std::function<std::unique_ptr<Runner>(RunnerInputs)>;
};

// The runner `run.runner` names (default runner_base).
std::unique_ptr<Runner> make_runner(RunnerInputs in);

// Which checkpoint to resume from: `resume` = "auto" (or a launcher restart, restart_count > 0) takes
// the latest complete checkpoint in run.output_dir (none: a fresh start); a path names one; otherwise
// run.resume_ckpt_path if set. A fresh start (none of these) fails when run.output_dir already holds an
// earlier run's checkpoints or metrics.jsonl. Reads files only: every rank calls it before any writes.
std::optional<std::filesystem::path> resolve_resume(const Config& cfg, const std::string& resume, int restart_count);

// Seed of the per-iteration task RNG.
uint64_t task_rng_seed(int64_t seed, int rank, int64_t global_step);

}  // namespace cb
