#include "runners/train/runner_base.h"

#include <signal.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <atomic>
#include <map>

#include "framework/autocast.h"
#include "framework/device_prefetch.h"
#include "framework/distributed/grad_sync.h"
#include "framework/distributed/rendezvous.h"
#include "framework/error.h"
#include "framework/splitmix64.h"
#include "models/chatbridge.h"
#include "runners/train/grad_scaler.h"
#include "runners/train/loss_plot.h"
#include "runners/train/lr_schedule.h"
#include "runners/train/optim.h"
#include "runners/train/train_log.h"
#include "runners/train/training_checkpoint.h"
#include "runners/train/validation.h"

namespace cb {
namespace fs = std::filesystem;

namespace {

std::atomic<int> g_stop_signal{0};  // the first SIGTERM or SIGINT received, 0 before one
bool g_second_sigint_exits = false;

extern "C" void on_stop_signal(int sig) {
  int none = 0;
  if (!g_stop_signal.compare_exchange_strong(none, sig)) return;
  // Async-signal-safe feedback now: the step in progress may take a while.
  static constexpr char kMsg[] =
      "\nstop requested: a checkpoint is saved at the end of this step, then training stops\n";
  static constexpr char kAgain[] = "(Ctrl-C again exits at once, without a checkpoint)\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
  if (sig == SIGINT && g_second_sigint_exits) n = ::write(STDERR_FILENO, kAgain, sizeof kAgain - 1);
}

// SIGTERM and SIGINT (Ctrl-C) handlers for the duration of train(): save at the step's end and stop;
// the previous handlers are restored afterwards. Run directly, a second SIGINT takes the default action
// (exit at once). Under a launcher (chatbridge-launch, torchrun) it does not: the launcher forwards the
// terminal's Ctrl-C that already reached the worker, so one press arrives twice.
class StopSignalScope {
 public:
  StopSignalScope() {
    g_stop_signal = 0;
    g_second_sigint_exits = dist::dist_env_from_environment().source == "none";
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &prev_term_);
    if (g_second_sigint_exits) sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, &prev_int_);
  }
  ~StopSignalScope() {
    sigaction(SIGTERM, &prev_term_, nullptr);
    sigaction(SIGINT, &prev_int_, nullptr);
  }

 private:
  struct sigaction prev_term_ {};
  struct sigaction prev_int_ {};
};

class RunnerBase : public Runner {
 public:
  // Reads run.* (defaults: framework/config_schema.cpp).
  explicit RunnerBase(RunnerInputs in);

  // The loop, top to bottom: per iteration the next batch, the LR of the schedule, forward and backward,
  // an optimiser step every accum_grad_iters, the metrics over ranks, the log line, a checkpoint when
  // one is due; SIGTERM or SIGINT stops at the next optimiser step, after saving. After each epoch the valid
  // splits, after the last the test splits; at the end the loss/LR plot.
  TrainResult train() override;

 private:
  // One iteration's figures over all ranks: the loss averaged, samples and tokens summed.
  struct StepMetrics {
    double loss = 0;
    int64_t samples = 0, tokens = 0;
  };

  // Setup, in train()'s order.
  void setup();                 // model on the device, optimiser, LR schedule, grad scaler, torch seed
  void agree_on_resume();       // every rank resumes from rank 0's checkpoint, or every rank fails
  TrainingState resume();       // parameters, optimiser, loader, RNG and scaler from in_.resume
  void broadcast_parameters();  // rank 0's trainable parameters to every rank; GradSync over > 1 rank
  // One iteration's steps.
  Batch next_batch(int64_t epoch, int64_t iter);
  StepOutput forward_backward(const Batch& batch, bool sync_grads);
  void optimizer_step();          // skipped when a gradient is not finite
  bool gradients_finite() const;  // every trainable parameter's gradient
  StepMetrics reduce_metrics(const StepOutput& out, const Batch& batch);
  bool stop_requested();  // SIGTERM or SIGINT on any rank; every rank gets the same answer
  void log_progress(int64_t epoch, int64_t iter, double lr, const StepMetrics& m);
  void maybe_save(int64_t epoch, int64_t iter, bool stop);  // called on optimiser steps only
  fs::path save(int64_t epoch, int64_t iters_done);         // the checkpoint's directory on rank 0
  TrainResult stop_after_save(TrainResult result);
  // Past an epoch's iterations.
  bool validation_pending(int64_t epoch) const;
  void end_epoch(int64_t epoch);
  void test(int64_t last_epoch);  // run.test_splits after the last epoch
  void write_plot();
  void report_skipped_samples();  // the data's skips over all ranks, logged by rank 0

  dist::ProcessGroup& pg() const { return *in_.pg; }

  RunnerInputs in_;
  LrScheduleConfig sched_cfg_;
  AdamWSettings adamw_;
  int64_t accum_ = 0, log_freq_ = 0, save_every_ = 0, seed_ = 0;
  int keep_last_ = 0;
  bool amp_ = false, tensorboard_ = false;
  fs::path output_dir_;
  std::string lr_sched_;
  torch::Device device_ = torch::kCPU;

  // Set up by train() and shared by its steps.
  StateDict params_;  // trainable_named_parameters
  std::unique_ptr<torch::optim::AdamW> opt_;
  std::unique_ptr<LrScheduler> sched_;
  std::unique_ptr<GradScaler> scaler_;    // AMP on CUDA only
  std::unique_ptr<dist::GradSync> sync_;  // more than one rank only
  std::optional<TrainLog> log_;
  std::unique_ptr<Validator> validator_;  // run.valid_splits or run.test_splits set
  ValidationRecord validation_;
  // On a GPU the next batch is fetched and copied while the current step runs; a checkpoint then
  // records the loader as it was before that fetch, so that a resume trains that batch.
  std::optional<DevicePrefetcher> prefetch_;
  nlohmann::json loader_before_prefetch_;
  int64_t global_ = 0;  // iterations done, resumed ones included
  // Optimiser steps skipped for non-finite gradients (without the grad scaler), in all and in a row.
  static constexpr int64_t kMaxNonFiniteInARow = 10;
  int64_t nonfinite_steps_ = 0, nonfinite_in_a_row_ = 0;
};

RunnerBase::RunnerBase(RunnerInputs in) : in_(std::move(in)) {
  auto run = in_.cfg.sub("run");
  sched_cfg_ = lr_schedule_config(run);
  accum_ = run.get<int64_t>("accum_grad_iters");  // the bounds of these counts: framework/config_schema.cpp
  log_freq_ = run.get<int64_t>("log_freq");
  save_every_ = run.get<int64_t>("save_every_iters");
  keep_last_ = static_cast<int>(run.get<int64_t>("keep_last_checkpoints"));
  if (const int64_t total = sched_cfg_.max_epoch * sched_cfg_.iters_per_epoch; sched_cfg_.warmup_steps >= total)
    spdlog::warn(
        "run.warmup_steps ({}) is not shorter than the whole run (run.max_epoch x iters_per_epoch = {} steps): the "
        "learning rate never reaches run.init_lr ({})",
        sched_cfg_.warmup_steps, total, sched_cfg_.init_lr);
  amp_ = run.get<bool>("amp");
  tensorboard_ = run.get<bool>("tensorboard");
  seed_ = run.get<int64_t>("seed");
  if (!run.get<std::string>("wandb_key").empty())  // the original's configs set it; say it does nothing here
    spdlog::warn(
        "run.wandb_key is set but Weights & Biases logging is not implemented: the training record is "
        "{}/metrics.jsonl",
        run.get<std::string>("output_dir"));
  output_dir_ = run.get<std::string>("output_dir");
  lr_sched_ = run.get<std::string>("lr_sched");
  adamw_.lr = sched_cfg_.init_lr;
  adamw_.weight_decay = run.get<double>("weight_decay");
  device_ = pg().device();  // run.device as chatbridge-train resolved it for the process group
}

TrainResult RunnerBase::train() {
  setup();
  agree_on_resume();
  TrainingState start;
  if (in_.resume) start = resume();
  broadcast_parameters();

  StopSignalScope stop_signals;
  const int64_t ipe = sched_cfg_.iters_per_epoch, max_epoch = sched_cfg_.max_epoch;
  log_.emplace(pg().is_main() ? output_dir_ : fs::path(), log_freq_, pg().is_main(),
               pg().is_main() && tensorboard_ ? output_dir_ / "tb" : fs::path());
  prefetch_.emplace(device_);
  TrainResult result;
  global_ = start.global_step;
  int64_t epoch = start.epoch, first_iter = start.iter;
  if (first_iter >= ipe && !validation_pending(epoch)) ++epoch, first_iter = 0;

  for (; epoch < max_epoch; ++epoch, first_iter = 0) {
    in_.model->train();
    for (int64_t i = first_iter; i < ipe; ++i) {
      pg().set_step(global_);  // named when a collective of this iteration fails
      Batch batch = next_batch(epoch, i);
      const double lr = sched_->step(*opt_, epoch, i);
      const bool step_now = (i + 1) % accum_ == 0;
      StepOutput out = forward_backward(batch, step_now);
      if (step_now) optimizer_step();
      const StepMetrics m = reduce_metrics(out, batch);
      const bool stop = stop_requested();
      result.losses.push_back(m.loss);
      log_progress(epoch, i, lr, m);
      ++global_;
      if (step_now) {
        maybe_save(epoch, i, stop);
        if (stop) return stop_after_save(std::move(result));
      }
    }
    end_epoch(epoch);
  }
  log_->finish_bar();
  report_skipped_samples();
  if (pg().is_main()) in_.task->finish(*in_.model, in_.cfg);
  test(max_epoch - 1);
  write_plot();
  pg().barrier();
  result.global_step = global_;
  return result;
}

void RunnerBase::setup() {
  if (auto* chatbridge = dynamic_cast<ChatBridgeImpl*>(in_.model.get())) chatbridge->place(device_);
  else in_.model->to(device_);
  params_ = trainable_named_parameters(*in_.model);
  opt_ = make_adamw(*in_.model, adamw_);
  sched_ = make_lr_scheduler(lr_sched_, sched_cfg_);
  if (amp_ && device_.is_cuda()) scaler_ = std::make_unique<GradScaler>();
  torch::manual_seed(seed_ + pg().rank());  // setup_seeds of the original
  if (Validator::configured(in_.cfg)) validator_ = std::make_unique<Validator>(in_.cfg, *in_.model, device_);
}

// Each rank resolved its checkpoint from its own view of run.output_dir (resolve_resume). Views differ
// when the directory is not on a file system every node sees, or when a network file system still
// lists a node's cached directory: a rank that started fresh (or from an older checkpoint) beside one
// that resumed would train other steps with other optimiser and loader state, and the ranks' collectives
// would stop matching. Rank 0's choice counts; a rank that cannot read it fails, and so does every rank.
void RunnerBase::agree_on_resume() {
  if (pg().world_size() == 1) return;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string mine = in_.resume ? in_.resume->string() : "";
  const auto views = pg().all_gather_json({{"resume", mine}, {"host", host}});
  const std::string chosen = views.at(0).at("resume");
  const bool readable = chosen.empty() || is_complete_checkpoint(chosen);
  const auto readable_on = pg().all_gather_json(readable);
  std::vector<std::string> blind;
  for (int r = 0; r < pg().world_size(); ++r)
    if (!readable_on.at(r).get<bool>())
      blind.push_back(fmt::format("rank {} (host {}, which found {})", r, views.at(r).at("host").get<std::string>(),
                                  views.at(r).at("resume").get<std::string>().empty()
                                      ? "no checkpoint"
                                      : views.at(r).at("resume").get<std::string>()));
  if (!blind.empty())
    fail(
        "resume: rank 0 (host {}) resumes from '{}', which {} cannot read: run.output_dir '{}' must be on a file "
        "system every node sees (docs/multinode.md)",
        views.at(0).at("host").get<std::string>(), chosen, fmt::join(blind, ", "), output_dir_.string());
  if (mine != chosen) {
    spdlog::warn("resume: rank {} found {} in its view of {}; resuming from rank 0's {}", pg().rank(),
                 mine.empty() ? "no checkpoint" : "'" + mine + "'", output_dir_.string(),
                 chosen.empty() ? "fresh start" : "'" + chosen + "'");
    in_.resume = chosen.empty() ? std::nullopt : std::optional<fs::path>(chosen);
  }
}

TrainingState RunnerBase::resume() {
  TrainingState start = load_training_checkpoint(*in_.resume, params_, *opt_);
  if (static_cast<int>(start.ranks.size()) != pg().world_size())
    fail("checkpoint '{}': saved by {} ranks, this run has {}", in_.resume->string(), start.ranks.size(),
         pg().world_size());
  // Saved with another iters_per_epoch, its iteration may lie past this run's epoch end and its step
  // count no longer equals epoch x iters_per_epoch + iteration: the run would take too few or too many
  // steps, shift the LR schedule and show a negative ETA. (Within epoch 0 a change cannot be seen, nor
  // does it matter.)
  if (const int64_t ipe = sched_cfg_.iters_per_epoch;
      start.iter > ipe || start.epoch * ipe + start.iter != start.global_step) {
    const auto saved_yaml = *in_.resume / "config.yaml";
    const auto saved = Config(load_yaml_file(saved_yaml, saved_yaml.string()), saved_yaml.string())
                           .get_optional<int64_t>("run.iters_per_epoch");
    fail(
        "checkpoint '{}' (epoch {}, iteration {}, step {}) was saved by a run with run.iters_per_epoch {}, this run "
        "has {}: resume with the iters_per_epoch it was saved with, or start a new run in another run.output_dir",
        in_.resume->string(), start.epoch, start.iter, start.global_step, saved ? std::to_string(*saved) : "(not set)",
        ipe);
  }
  const auto& mine = start.ranks.at(pg().rank());
  in_.source->restore(mine.at("loader"));
  set_torch_cpu_rng_state(mine.at("torch_rng").get<std::vector<uint8_t>>());
  if (scaler_ && !start.scaler.is_null()) scaler_->restore(start.scaler);
  validation_ = ValidationRecord::from_json(start.validation, (*in_.resume / "state.json").string());
  spdlog::info("resumed from {} (epoch {}, iteration {}, step {})", in_.resume->string(), start.epoch, start.iter,
               start.global_step);
  return start;
}

void RunnerBase::broadcast_parameters() {
  std::vector<torch::Tensor> values;
  for (const auto& p : params_) values.push_back(p.value());
  pg().broadcast(values);
  if (pg().world_size() > 1) sync_ = std::make_unique<dist::GradSync>(params_, in_.pg);
}

Batch RunnerBase::next_batch(int64_t epoch, int64_t iter) {
  if (!prefetch_->active()) return in_.source->next();
  if (!prefetch_->holds_batch()) prefetch_->put(in_.source->next());  // the first step
  Batch batch = prefetch_->take();
  loader_before_prefetch_ = in_.source->state();
  if (epoch + 1 < sched_cfg_.max_epoch || iter + 1 < sched_cfg_.iters_per_epoch)  // not the last iteration
    prefetch_->put(in_.source->next());
  return batch;
}

// The loss is back-propagated as it is (scaled under AMP on CUDA); gradients are averaged over ranks
// only on the iterations that end with an optimiser step, and accumulate locally in between.
StepOutput RunnerBase::forward_backward(const Batch& batch, bool sync_grads) {
  StepOutput out;
  {
    AutocastGuard ac(amp_, device_);
    out = in_.task->train_step(*in_.model, batch, task_rng_seed(seed_, pg().rank(), global_));
  }
  auto loss = scaler_ ? scaler_->scale(out.loss) : out.loss;
  if (!sync_) {
    loss.backward();
  } else if (sync_grads) {
    sync_->backward(loss);
  } else {
    auto local = sync_->no_sync();
    sync_->backward(loss);
  }
  return out;
}

// Under the CUDA grad scaler a non-finite gradient skips the step (torch.cuda.amp). Elsewhere the same
// holds here, where the original would step: AdamW would turn every trained weight into NaN for good,
// and the run would go on with `loss nan` to its end. The gradients were averaged over ranks, so every
// rank takes the same decision. Many skips in a row mean that nothing is learning any more: stop.
void RunnerBase::optimizer_step() {
  if (scaler_) {
    scaler_->step(*opt_);
  } else if (gradients_finite()) {
    opt_->step();
    nonfinite_in_a_row_ = 0;
  } else {
    ++nonfinite_steps_;
    if (++nonfinite_in_a_row_ >= kMaxNonFiniteInARow)
      fail(
          "step {}: the gradients hold NaN or inf for the {}th optimiser step in a row: stopping (the "
          "checkpoints in {} hold the last finite weights)",
          global_ + 1, nonfinite_in_a_row_, output_dir_.string());
    spdlog::warn("step {}: the gradients hold NaN or inf: this optimiser step is skipped ({} skipped so far)",
                 global_ + 1, nonfinite_steps_);
  }
  zero_grad_keep(*opt_);
}

bool RunnerBase::gradients_finite() const {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> finite;  // one flag per gradient, reduced with one device-to-host copy
  for (const auto& p : params_)
    if (p.value().grad().defined()) finite.push_back(p.value().grad().isfinite().all());
  return finite.empty() || torch::stack(finite).all().item<bool>();
}

RunnerBase::StepMetrics RunnerBase::reduce_metrics(const StepOutput& out, const Batch& batch) {
  double loss = out.loss.item<double>();
  double tokens = static_cast<double>(out.tokens), samples = static_cast<double>(batch.size());
  if (const int world = pg().world_size(); world > 1) {
    loss = pg().all_reduce_mean(loss);
    tokens = pg().all_reduce_mean(tokens) * world;
    samples = pg().all_reduce_mean(samples) * world;
  }
  return {loss, static_cast<int64_t>(samples), static_cast<int64_t>(tokens)};
}

bool RunnerBase::stop_requested() {
  const bool stop = g_stop_signal != 0;
  if (pg().world_size() == 1) return stop;
  return pg().all_reduce_mean(stop ? 1.0 : 0.0) > 0;  // every rank stops at the same step
}

void RunnerBase::log_progress(int64_t epoch, int64_t iter, double lr, const StepMetrics& m) {
  const int64_t ipe = sched_cfg_.iters_per_epoch;
  log_->record({epoch, iter, ipe, global_, sched_cfg_.max_epoch * ipe, m.loss, lr, m.samples, m.tokens});
}

// Checkpoints fall on optimiser steps: every save_every_iters iterations, at the end of an epoch (after
// its validation, end_epoch) and at a stop.
void RunnerBase::maybe_save(int64_t epoch, int64_t iter, bool stop) {
  const bool epoch_end = iter + 1 == sched_cfg_.iters_per_epoch && !validation_pending(epoch);
  if (stop || (save_every_ > 0 && global_ % save_every_ == 0) || epoch_end) save(epoch, iter + 1);
}

fs::path RunnerBase::save(int64_t epoch, int64_t iters_done) {
  nlohmann::json mine{{"loader", prefetch_->active() ? loader_before_prefetch_ : in_.source->state()},
                      {"torch_rng", torch_cpu_rng_state()}};
  auto all = pg().all_gather_json(mine);
  fs::path dir;
  if (pg().is_main()) {
    CheckpointContents c;
    c.params = params_;
    c.optimizer = opt_.get();
    c.state.epoch = epoch;
    c.state.iter = iters_done;
    c.state.global_step = global_;
    c.state.scaler = scaler_ ? scaler_->state() : nlohmann::json();
    c.state.ranks = all;
    if (validator_ && validator_->validates()) c.state.validation = validation_.to_json();
    c.config_yaml = in_.cfg.to_yaml();
    dir = save_training_checkpoint(output_dir_, c, keep_last_);
    spdlog::info("checkpoint saved: {}", dir.string());
  }
  pg().barrier();
  return dir;
}

// The warnings name the first skipped samples as they happen; the end of a run gives the totals, which
// include the run's earlier parts when it was resumed (the counters live in the checkpoints).
void RunnerBase::report_skipped_samples() {
  nlohmann::json mine = nlohmann::json::object();
  for (const auto& [dataset, c] : in_.source->skip_counts()) mine[dataset] = {c.tried, c.bad};
  const auto ranks = pg().world_size() > 1 ? pg().all_gather_json(mine) : std::vector<nlohmann::json>{mine};
  if (!pg().is_main() || mine.empty()) return;
  std::map<std::string, BatchSource::SkipCount> sum;
  for (const auto& r : ranks)
    for (const auto& [dataset, c] : r.items()) {
      sum[dataset].tried += c[0].get<int64_t>();
      sum[dataset].bad += c[1].get<int64_t>();
    }
  int64_t tried = 0, bad = 0;
  std::string which;
  for (const auto& [dataset, c] : sum) {
    tried += c.tried, bad += c.bad;
    if (c.bad) which += fmt::format("{}{} {} of {}", which.empty() ? "" : ", ", dataset, c.bad, c.tried);
  }
  if (bad == 0) spdlog::info("data: no sample skipped ({} tried)", tried);
  else spdlog::warn("data: {} of {} samples skipped as unreadable or malformed: {}", bad, tried, which);
}

TrainResult RunnerBase::stop_after_save(TrainResult result) {
  log_->finish_bar();
  report_skipped_samples();
  write_plot();
  // A rank that received nothing stops for another rank's signal.
  result.stop_signal = g_stop_signal != 0 ? g_stop_signal.load() : SIGTERM;
  spdlog::warn("{}: checkpoint saved at step {}, stopping", result.stop_signal == SIGINT ? "SIGINT" : "SIGTERM",
               global_);
  result.global_step = global_;
  return result;
}

bool RunnerBase::validation_pending(int64_t epoch) const {
  return validator_ && validator_->validates() && validation_.validated_epoch < epoch;
}

// The original's order: the epoch's training, its validation (a new best "val" agg_metrics keeps the
// epoch as checkpoint_best), then the epoch's checkpoint, which carries the validation record.
void RunnerBase::end_epoch(int64_t epoch) {
  const int64_t ipe = sched_cfg_.iters_per_epoch;
  if (!validation_pending(epoch)) {
    if (ipe % accum_ != 0) save(epoch, ipe);  // the epoch end was not an optimiser step
    return;
  }
  const bool best = validator_->validate(epoch, global_ - 1, pg(), *log_, validation_);
  const auto dir = save(epoch, ipe);
  if (best) {
    spdlog::info("epoch {}: best val agg_metrics so far ({:.4f}), kept as {}", epoch, validation_.best_agg_metric,
                 keep_as_best(dir, output_dir_).string());
  }
}

// As the original's evaluate(cur_epoch="best"): with valid splits the test splits see checkpoint_best's
// weights, without them the last epoch's.
void RunnerBase::test(int64_t last_epoch) {
  if (!validator_ || !validator_->tests()) return;
  pg().barrier();  // rank 0 has finished writing checkpoint_best
  std::string label = std::to_string(last_epoch);
  if (validator_->validates()) {
    const auto best = best_checkpoint_dir(output_dir_);
    if (fs::exists(best)) {
      load_training_checkpoint(best, params_, *opt_);  // the optimiser state is not used again
      label = "best";
    } else {
      spdlog::warn("no {} (no 'val' split validated): testing the last epoch's model", best.string());
    }
  }
  validator_->test(label, last_epoch, global_ - 1, pg(), *log_);
}

// Rank 0: the loss and learning-rate curves of metrics.jsonl (the resumed parts of the run included).
void RunnerBase::write_plot() {
  if (!pg().is_main()) return;
  const auto svg = output_dir_ / "loss_lr.svg";
  if (write_loss_plot(output_dir_ / "metrics.jsonl", svg) > 0)
    spdlog::info("loss and learning-rate curves: {}", svg.string());
}

}  // namespace

uint64_t task_rng_seed(int64_t seed, int rank, int64_t global_step) {
  // splitmix64's mix of the three, so neighbouring steps and ranks get unrelated streams
  return splitmix64_mix(static_cast<uint64_t>(seed) * kSplitmix64Gamma + static_cast<uint64_t>(rank) * kSplitmix64Mul1 +
                        static_cast<uint64_t>(global_step));
}

std::unique_ptr<Runner> make_runner(RunnerInputs in) {
  auto name = in.cfg.get<std::string>("run.runner");
  return registry::get<Kind::runner>(name)(std::move(in));
}

std::optional<fs::path> resolve_resume(const Config& cfg, const std::string& resume, int restart_count) {
  auto output_dir = fs::path(cfg.get<std::string>("run.output_dir"));
  if (resume == "auto" || restart_count > 0) {
    auto latest = latest_checkpoint(output_dir);
    if (!latest) spdlog::info("resume: no complete checkpoint in {}, starting fresh", output_dir.string());
    return latest;
  }
  // Named checkpoints are checked before the model is built (minutes at full size).
  const auto named = [](const fs::path& p, const char* from) {
    if (!fs::exists(p)) fail("{} '{}': the checkpoint does not exist", from, p.string());
    return p;
  };
  if (!resume.empty()) return named(resume, "--resume");
  if (auto p = cfg.get_optional<std::string>("run.resume_ckpt_path")) return named(*p, "run.resume_ckpt_path");
  // A fresh run would overwrite the earlier run's same-step checkpoints, leave its newer ones for a
  // later --resume auto to pick, and append to its metrics.jsonl.
  if (auto latest = latest_checkpoint(output_dir))
    fail(
        "run.output_dir '{}' holds checkpoints of an earlier run (newest: {}): resume it with --resume auto, or "
        "choose another run.output_dir",
        output_dir.string(), latest->string());
  if (fs::exists(output_dir / "metrics.jsonl"))
    fail("run.output_dir '{}' holds the metrics.jsonl of an earlier run: choose another run.output_dir",
         output_dir.string());
  return std::nullopt;
}

CB_REGISTER(runner, "runner_base",
            [](RunnerInputs in) -> std::unique_ptr<Runner> { return std::make_unique<RunnerBase>(std::move(in)); });

}  // namespace cb
