#include "runners/train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "framework/error.h"

namespace cb {

namespace {

// warmup_lr_schedule of the original; operations in its order so the doubles match bit for bit.
double warmup_lr(int64_t step, int64_t max_step, double start_lr, double max_lr) {
  return std::min(max_lr, start_lr + (max_lr - start_lr) * double(step) / double(std::max<int64_t>(max_step, 1)));
}

LrScheduleConfig resolved(LrScheduleConfig c) {
  if (c.warmup_start_lr < 0) c.warmup_start_lr = c.init_lr;
  return c;
}

}  // namespace

double LrScheduler::step(torch::optim::Optimizer& opt, int64_t epoch, int64_t step) const {
  const double lr = lr_at(epoch, step);
  for (auto& group : opt.param_groups()) group.options().set_lr(lr);
  return lr;
}

LinearWarmupCosineLr::LinearWarmupCosineLr(const LrScheduleConfig& c) : c_(resolved(c)) {
  if (c_.max_epoch <= 0 || c_.iters_per_epoch <= 0)
    fail("linear_warmup_cosine_lr: run.max_epoch ({}) and iters_per_epoch ({}) must be positive", c_.max_epoch,
         c_.iters_per_epoch);
}

double LinearWarmupCosineLr::lr_at(int64_t epoch, int64_t step) const {
  const int64_t total = epoch * c_.iters_per_epoch + step;
  // Quirk of the original: the warmup ramp uses `step` (within the epoch), not `total`, so a warmup
  // longer than one epoch restarts at every epoch boundary.
  if (total < c_.warmup_steps) return warmup_lr(step, c_.warmup_steps, c_.warmup_start_lr, c_.init_lr);
  const int64_t total_steps = c_.max_epoch * c_.iters_per_epoch;
  return (c_.init_lr - c_.min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * double(total) / double(total_steps))) +
         c_.min_lr;
}

LinearWarmupStepLr::LinearWarmupStepLr(const LrScheduleConfig& c) : c_(resolved(c)) {
  if (!c_.decay_rate && c_.max_epoch > 1) fail("linear_warmup_step_lr: run.lr_decay_rate is required");
}

double LinearWarmupStepLr::lr_at(int64_t epoch, int64_t step) const {
  if (epoch == 0) return warmup_lr(step, c_.warmup_steps, c_.warmup_start_lr, c_.init_lr);
  return std::max(c_.min_lr, c_.init_lr * std::pow(c_.decay_rate.value_or(1.0), double(epoch)));
}

LrScheduleConfig lr_schedule_config(const Config& run, std::optional<int64_t> loader_len) {
  LrScheduleConfig c;
  c.init_lr = run.get<double>("init_lr");
  c.min_lr = run.get<double>("min_lr");
  c.max_epoch = run.get<int64_t>("max_epoch");
  c.warmup_start_lr = run.get<double>("warmup_lr");
  c.warmup_steps = run.get<int64_t>("warmup_steps");
  c.decay_rate = run.get_optional<double>("lr_decay_rate");
  c.iters_per_epoch = run.get_optional<int64_t>("iters_per_epoch").value_or(loader_len.value_or(10000));
  return c;
}

std::unique_ptr<LrScheduler> make_lr_scheduler(const std::string& name, const LrScheduleConfig& c) {
  return registry::get<Kind::lr_scheduler>(name)(c);
}

CB_REGISTER(lr_scheduler, "linear_warmup_cosine_lr",
            [](const LrScheduleConfig& c) { return std::make_unique<LinearWarmupCosineLr>(c); });
CB_REGISTER(lr_scheduler, "linear_warmup_step_lr",
            [](const LrScheduleConfig& c) { return std::make_unique<LinearWarmupStepLr>(c); });

}  // namespace cb
