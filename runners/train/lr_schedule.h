// Learning-rate schedules of the original (chatbridge/common/optims.py): registered names
// `linear_warmup_cosine_lr` and `linear_warmup_step_lr`. The runner calls `step(opt, epoch, i)` before
// every optimisation step; it sets the lr of every param group and returns it.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "framework/config.h"
#include "framework/registry.h"

namespace cb {

// The `run:` values the runner hands to the scheduler (RunnerBase.lr_scheduler in runners/runner_base.py).
struct LrScheduleConfig {
  double init_lr = 0;
  double min_lr = 0;
  double warmup_start_lr = -1;  // run.warmup_lr; negative means "start at init_lr"
  int64_t warmup_steps = 0;
  int64_t max_epoch = 0;
  int64_t iters_per_epoch = 0;
  std::optional<double> decay_rate;  // run.lr_decay_rate (None if absent), step schedule only
};

// What RunnerBase.lr_scheduler reads from the `run:` section: init_lr, min_lr, max_epoch (required),
// warmup_lr (-1), warmup_steps (0), lr_decay_rate (None), and iters_per_epoch from run.iters_per_epoch,
// else `loader_len` (len of the train loader, when it has one), else 10000.
LrScheduleConfig lr_schedule_config(const Config& run, std::optional<int64_t> loader_len = std::nullopt);

class LrScheduler {
 public:
  virtual ~LrScheduler() = default;
  // lr for iteration `step` within epoch `epoch` (both 0-based).
  virtual double lr_at(int64_t epoch, int64_t step) const = 0;
  // Sets that lr on every param group of `opt` and returns it.
  double step(torch::optim::Optimizer& opt, int64_t epoch, int64_t step) const;
};

// Linear warmup then half-cosine from init_lr to min_lr over max_epoch * iters_per_epoch steps.
class LinearWarmupCosineLr : public LrScheduler {
 public:
  explicit LinearWarmupCosineLr(const LrScheduleConfig& c);
  double lr_at(int64_t epoch, int64_t step) const override;

 private:
  LrScheduleConfig c_;
};

// Linear warmup during epoch 0, then init_lr * decay_rate^epoch (floored at min_lr) per epoch.
// decay_rate is required when there is more than one epoch (the original crashes on None there).
class LinearWarmupStepLr : public LrScheduler {
 public:
  explicit LinearWarmupStepLr(const LrScheduleConfig& c);
  double lr_at(int64_t epoch, int64_t step) const override;

 private:
  LrScheduleConfig c_;
};

// Builds the scheduler registered under `name` (run.lr_sched); fails on an unknown name.
std::unique_ptr<LrScheduler> make_lr_scheduler(const std::string& name, const LrScheduleConfig& c);

template <>
struct FactoryOf<Kind::lr_scheduler> {
  using type = std::function<std::unique_ptr<LrScheduler>(const LrScheduleConfig&)>;
};

}  // namespace cb
