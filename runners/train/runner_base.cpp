#include "runners/train/runner_base.h"

#include <signal.h>

#include <spdlog/spdlog.h>
#include <atomic>

#include "framework/device_prefetch.h"
#include "framework/distributed/grad_sync.h"
#include "framework/error.h"
#include "framework/splitmix64.h"
#include "runners/train/autocast.h"
#include "runners/train/grad_scaler.h"
#include "runners/train/lr_schedule.h"
#include "runners/train/optim.h"
#include "runners/train/train_log.h"
#include "runners/train/training_checkpoint.h"

namespace cb {
namespace fs = std::filesystem;

namespace {

std::atomic<bool> g_stop_requested{false};
extern "C" void on_sigterm(int) { g_stop_requested = true; }

// SIGTERM handler for the duration of train(); the previous one is restored afterwards.
class SigtermScope {
 public:
  SigtermScope() {
    g_stop_requested = false;
    struct sigaction sa {};
    sa.sa_handler = on_sigterm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &prev_);
  }
  ~SigtermScope() { sigaction(SIGTERM, &prev_, nullptr); }

 private:
  struct sigaction prev_ {};
};

class RunnerBase : public Runner {
 public:
  explicit RunnerBase(RunnerInputs in) : in_(std::move(in)) {
    auto run = in_.cfg.sub("run");
    sched_cfg_ = lr_schedule_config(run);
    accum_ = run.get<int64_t>("accum_grad_iters");
    if (accum_ < 1) fail("run.accum_grad_iters: must be >= 1, got {}", accum_);
    log_freq_ = run.get<int64_t>("log_freq");
    save_every_ = run.get<int64_t>("save_every_iters");
    keep_last_ = static_cast<int>(run.get<int64_t>("keep_last_checkpoints"));
    amp_ = run.get<bool>("amp");
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
    auto dev = run.get<std::string>("device");
    device_ =
        dev.rfind("cuda", 0) == 0 && torch::cuda::is_available() ? torch::Device(dev) : torch::Device(torch::kCPU);
  }

  TrainResult train() override {
    auto& pg = *in_.pg;
    const int rank = pg.rank(), world = pg.world_size();
    in_.model->to(device_);
    auto params = trainable_named_parameters(*in_.model);
    auto opt = make_adamw(*in_.model, adamw_);
    auto sched = make_lr_scheduler(lr_sched_, sched_cfg_);
    std::unique_ptr<GradScaler> scaler;
    if (amp_ && device_.is_cuda()) scaler = std::make_unique<GradScaler>();
    torch::manual_seed(seed_ + rank);  // setup_seeds of the original

    TrainingState start;
    if (in_.resume) {
      start = load_training_checkpoint(*in_.resume, params, *opt);
      if (static_cast<int>(start.ranks.size()) != world)
        fail("checkpoint '{}': saved by {} ranks, this run has {}", in_.resume->string(), start.ranks.size(), world);
      const auto& mine = start.ranks.at(rank);
      in_.source->restore(mine.at("loader"));
      set_torch_cpu_rng_state(mine.at("torch_rng").get<std::vector<uint8_t>>());
      if (scaler && !start.scaler.is_null()) scaler->restore(start.scaler);
      spdlog::info("resumed from {} (epoch {}, iteration {}, step {})", in_.resume->string(), start.epoch, start.iter,
                   start.global_step);
    }
    std::vector<torch::Tensor> values;
    for (const auto& p : params) values.push_back(p.value());
    pg.broadcast(values);
    std::unique_ptr<dist::GradSync> sync;
    if (world > 1) sync = std::make_unique<dist::GradSync>(params, in_.pg);

    SigtermScope sigterm;
    const int64_t ipe = sched_cfg_.iters_per_epoch, max_epoch = sched_cfg_.max_epoch;
    TrainLog log(pg.is_main() ? output_dir_ : fs::path(), log_freq_, pg.is_main());
    TrainResult result;
    int64_t global = start.global_step, epoch = start.epoch, first_iter = start.iter;
    if (first_iter >= ipe) ++epoch, first_iter = 0;

    // On a GPU the next batch is fetched and copied while the current step runs; a checkpoint then
    // records the loader as it was before that fetch, so that a resume trains that batch.
    DevicePrefetcher prefetch(device_);
    nlohmann::json loader_before_prefetch;
    auto save = [&](int64_t e, int64_t iters_done) {
      nlohmann::json mine{{"loader", prefetch.active() ? loader_before_prefetch : in_.source->state()},
                          {"torch_rng", torch_cpu_rng_state()}};
      auto all = pg.all_gather_json(mine);
      if (pg.is_main()) {
        CheckpointContents c;
        c.params = params;
        c.optimizer = opt.get();
        c.state.epoch = e;
        c.state.iter = iters_done;
        c.state.global_step = global;
        c.state.scaler = scaler ? scaler->state() : nlohmann::json();
        c.state.ranks = all;
        c.config_yaml = in_.cfg.to_yaml();
        auto dir = save_training_checkpoint(output_dir_, c, keep_last_);
        spdlog::info("checkpoint saved: {}", dir.string());
      }
      pg.barrier();
    };

    for (; epoch < max_epoch; ++epoch, first_iter = 0) {
      in_.model->train();
      for (int64_t i = first_iter; i < ipe; ++i) {
        Batch batch;
        if (prefetch.active()) {
          if (!prefetch.holds_batch()) prefetch.put(in_.source->next());  // the first step
          batch = prefetch.take();
          loader_before_prefetch = in_.source->state();
          if (epoch + 1 < max_epoch || i + 1 < ipe) prefetch.put(in_.source->next());
        } else {
          batch = in_.source->next();
        }
        double lr = sched->step(*opt, epoch, i);
        const bool step_now = (i + 1) % accum_ == 0;
        StepOutput out;
        {
          AutocastGuard ac(amp_, device_);
          out = in_.task->train_step(*in_.model, batch, task_rng_seed(seed_, rank, global));
        }
        auto loss = scaler ? scaler->scale(out.loss) : out.loss;
        if (sync && !step_now) {
          auto local = sync->no_sync();
          sync->backward(loss);
        } else if (sync) {
          sync->backward(loss);
        } else {
          loss.backward();
        }
        if (step_now) {
          if (scaler) scaler->step(*opt);
          else opt->step();
          zero_grad_keep(*opt);
        }

        double loss_value = out.loss.item<double>();
        double tokens = static_cast<double>(out.tokens), samples = static_cast<double>(batch.size());
        bool stop = g_stop_requested;
        if (world > 1) {
          loss_value = pg.all_reduce_mean(loss_value);
          tokens = pg.all_reduce_mean(tokens) * world;
          samples = pg.all_reduce_mean(samples) * world;
          stop = pg.all_reduce_mean(stop ? 1.0 : 0.0) > 0;  // every rank stops at the same step
        }
        result.losses.push_back(loss_value);
        log.record({epoch, i, ipe, global, max_epoch * ipe, loss_value, lr, static_cast<int64_t>(samples),
                    static_cast<int64_t>(tokens)});
        ++global;
        if (step_now && (stop || (save_every_ > 0 && global % save_every_ == 0) || i + 1 == ipe)) save(epoch, i + 1);
        if (stop && step_now) {
          log.finish_bar();
          spdlog::warn("SIGTERM: checkpoint saved at step {}, stopping", global);
          result.global_step = global;
          result.interrupted = true;
          return result;
        }
      }
      if (ipe % accum_ != 0) save(epoch, ipe);  // the epoch end was not an optimiser step
    }
    log.finish_bar();
    if (pg.is_main()) in_.task->finish(*in_.model, in_.cfg);
    pg.barrier();
    result.global_step = global;
    return result;
  }

 private:
  RunnerInputs in_;
  LrScheduleConfig sched_cfg_;
  AdamWSettings adamw_;
  int64_t accum_ = 1, log_freq_ = 50, save_every_ = 0, seed_ = 42;
  int keep_last_ = 0;
  bool amp_ = false;
  fs::path output_dir_;
  std::string lr_sched_;
  torch::Device device_ = torch::kCPU;
};

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
  if (!resume.empty()) return fs::path(resume);
  if (auto p = cfg.get_optional<std::string>("run.resume_ckpt_path")) return fs::path(*p);
  return std::nullopt;
}

CB_REGISTER(runner, "runner_base",
            [](RunnerInputs in) -> std::unique_ptr<Runner> { return std::make_unique<RunnerBase>(std::move(in)); });

}  // namespace cb
