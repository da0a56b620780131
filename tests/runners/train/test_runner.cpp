// Runner: checkpoint layout, atomicity and keep-last-k; exact resume from a mid-epoch checkpoint.
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include "framework/config_schema.h"
#include "framework/distributed/process_group.h"
#include "runners/train/optim.h"
#include "runners/train/runner_base.h"
#include "runners/train/training_checkpoint.h"
#include "tests/runners/train/runner_fixture.h"
#include "tests/support/scratch_dir.h"

using namespace cb;
using namespace cb::test;
namespace fs = std::filesystem;

namespace {

fs::path fresh(const std::string& name) { return cb::test::fresh_dir("runner_" + name); }

TrainResult run(const Config& cfg, int64_t batch, std::optional<fs::path> resume) {
  auto task = std::make_shared<GeneratedTask>(batch);
  RunnerInputs in{cfg,
                  task,
                  tiny_chatbridge().ptr(),
                  task->build_train_source(cfg, 0, 1),
                  dist::ProcessGroup::init(dist::DistEnv{}),
                  resume};
  return make_runner(std::move(in))->train();
}

// The generated source that raises SIGINT when it is asked for batch `at` (a Ctrl-C mid-step), `times` times.
class CtrlCSource : public BatchSource {
 public:
  CtrlCSource(std::unique_ptr<BatchSource> inner, int64_t at, int times)
      : inner_(std::move(inner)), at_(at), times_(times) {}
  Batch next() override {
    if (calls_++ == at_)
      for (int k = 0; k < times_; ++k) ::raise(SIGINT);
    return inner_->next();
  }
  nlohmann::json state() const override { return inner_->state(); }
  void restore(const nlohmann::json& s) override { inner_->restore(s); }

 private:
  std::unique_ptr<BatchSource> inner_;
  int64_t at_, calls_ = 0;
  int times_;
};

RunnerInputs inputs(const Config& cfg) {
  auto task = std::make_shared<GeneratedTask>(2);
  return {cfg,
          task,
          tiny_chatbridge().ptr(),
          task->build_train_source(cfg, 0, 1),
          dist::ProcessGroup::init(dist::DistEnv{}),
          std::nullopt};
}

TrainResult run_with_ctrl_c(const Config& cfg, int64_t at, int times) {
  auto task = std::make_shared<GeneratedTask>(2);
  RunnerInputs in{cfg,
                  task,
                  tiny_chatbridge().ptr(),
                  std::make_unique<CtrlCSource>(task->build_train_source(cfg, 0, 1), at, times),
                  dist::ProcessGroup::init(dist::DistEnv{}),
                  std::nullopt};
  return make_runner(std::move(in))->train();
}

}  // namespace

TEST_CASE("training checkpoints: complete marker, latest, keep-last-k, crashed saves ignored") {
  auto dir = fresh("ckpt");
  auto model = tiny_chatbridge();
  auto params = trainable_named_parameters(*model);
  auto opt = make_adamw(*model, {});
  CheckpointContents c;
  c.params = params;
  c.optimizer = opt.get();
  c.config_yaml = "run: {}\n";
  c.state.ranks = nlohmann::json::array({{{"loader", {{"pos", 1}}}, {"torch_rng", torch_cpu_rng_state()}}});
  for (int64_t step : {5, 10, 15}) {
    c.state.global_step = step;
    save_training_checkpoint(dir, c, /*keep_last=*/2);
  }
  auto root = checkpoints_dir(dir);
  CHECK_FALSE(fs::exists(root / "step_000000005"));
  CHECK(fs::exists(root / "step_000000010" / "COMPLETE"));
  REQUIRE(latest_checkpoint(dir) == root / "step_000000015");
  // A same-step save replaces the checkpoint (exchanged in one rename); nothing temporary stays behind.
  c.state.ranks[0]["loader"]["pos"] = 2;
  save_training_checkpoint(dir, c, /*keep_last=*/2);
  CHECK(load_training_checkpoint(root / "step_000000015", params, *opt).ranks.at(0).at("loader").at("pos") == 2);
  c.state.ranks[0]["loader"]["pos"] = 1;
  save_training_checkpoint(dir, c, /*keep_last=*/2);
  for (const auto& e : fs::directory_iterator(root)) CHECK(e.path().filename().string().rfind(".tmp-", 0) != 0);

  // A save killed before its rename leaves a temporary; one killed before the marker an unmarked dir.
  fs::create_directories(root / ".tmp-step_000000020");
  fs::create_directories(root / "step_000000025");
  std::ofstream(root / "step_000000025" / "model.safetensors") << "partial";
  CHECK(latest_checkpoint(dir) == root / "step_000000015");
  CHECK_THROWS_WITH(load_training_checkpoint(root / "step_000000025", params, *opt), Catch::Contains("COMPLETE"));
  auto st = load_training_checkpoint(root / "step_000000015", params, *opt);
  CHECK(st.global_step == 15);
  CHECK(st.ranks.at(0).at("loader").at("pos") == 1);

  CHECK_THROWS_WITH(load_training_checkpoint(dir / "nonexistent", params, *opt),
                    Catch::Contains((dir / "nonexistent").string()) && Catch::Contains("does not exist"));
  // A state.json cut inside a long string (a loader's RNG state): the error names the file and quotes
  // only the end of what it read.
  c.state.global_step = 30;
  c.state.ranks[0]["loader"]["rng"] = std::string(5000, '7');
  const auto cut = save_training_checkpoint(dir, c, 0);
  std::ifstream saved(cut / "state.json");
  const std::string text((std::istreambuf_iterator<char>(saved)), std::istreambuf_iterator<char>());
  fs::resize_file(cut / "state.json", text.find(std::string(5000, '7')) + 2500);
  try {
    load_training_checkpoint(cut, params, *opt);
    FAIL("a truncated state.json loaded");
  } catch (const std::exception& e) {
    const std::string message = e.what();
    CHECK_THAT(message, Catch::Contains((cut / "state.json").string()) && Catch::Contains("not valid JSON") &&
                            Catch::Contains("last read: '...7777"));
    CHECK(message.size() < 400);
  }
  fs::remove_all(dir);
}

TEST_CASE("runner: resuming from a mid-epoch checkpoint reproduces the uninterrupted losses exactly") {
  torch::set_num_threads(1);
  auto a = fresh("full"), b = fresh("resumed");
  const std::string extra = "  save_every_iters: 3\n  accum_grad_iters: 1\n";
  auto full = run(run_config(a.string(), extra), 2, std::nullopt);
  REQUIRE(full.losses.size() == 8);  // 2 epochs x 4

  // The first 3 steps of the same run, then a fresh process state resumes from step 3 (mid epoch 0).
  auto first = run(run_config(b.string(), extra), 2, std::nullopt);
  auto mid = checkpoints_dir(b) / "step_000000003";
  REQUIRE(fs::exists(mid / "COMPLETE"));
  torch::manual_seed(12345);  // whatever the RNG holds now must not matter
  auto resumed = run(run_config(b.string(), extra), 2, mid);
  REQUIRE(resumed.losses.size() == 5);
  for (size_t i = 0; i < resumed.losses.size(); ++i) {
    INFO("step " << 3 + i);
    CHECK(resumed.losses[i] == full.losses[3 + i]);
  }
  CHECK(first.losses == full.losses);
  CHECK(full.losses.back() < full.losses.front());
  fs::remove_all(a), fs::remove_all(b);
}

TEST_CASE("resolve_resume: a fresh run into an earlier run's output directory is refused, a resume is not") {
  auto dir = fresh("reuse");
  const auto cfg = run_config(dir.string());
  CHECK_FALSE(resolve_resume(cfg, "", 0));  // empty: a fresh start
  std::ofstream(dir / "metrics.jsonl") << "{\"step\": 0}\n";
  CHECK_THROWS_WITH(resolve_resume(cfg, "", 0), Catch::Contains(dir.string()) && Catch::Contains("metrics.jsonl"));
  CHECK_FALSE(resolve_resume(cfg, "auto", 0));  // no checkpoint yet: --resume auto starts over

  for (const char* step : {"step_000000003", "step_000000006"}) {
    fs::create_directories(checkpoints_dir(dir) / step);
    std::ofstream(checkpoints_dir(dir) / step / "COMPLETE");
  }
  const auto newest = checkpoints_dir(dir) / "step_000000006";
  CHECK_THROWS_WITH(resolve_resume(cfg, "", 0), Catch::Contains(dir.string()) && Catch::Contains(newest.string()) &&
                                                    Catch::Contains("--resume auto") &&
                                                    Catch::Contains("another run.output_dir"));
  CHECK(resolve_resume(cfg, "auto", 0) == newest);
  CHECK(resolve_resume(cfg, "", 1) == newest);  // a launcher restart resumes
  const auto older = checkpoints_dir(dir) / "step_000000003";
  CHECK(resolve_resume(cfg, older.string(), 0) == older);
  // A named checkpoint that is not there fails here, before the model is built.
  CHECK_THROWS_WITH(resolve_resume(cfg, (dir / "nope").string(), 0),
                    Catch::Contains("--resume") && Catch::Contains("nope") && Catch::Contains("does not exist"));
  fs::remove_all(dir);
}

TEST_CASE("runner: Ctrl-C saves a checkpoint at the end of the step and stops, a second one exits at once") {
  torch::set_num_threads(1);
  const auto twice = fresh("ctrl_c_twice"), once = fresh("ctrl_c");
  // Twice, in a child process (it dies of the second): at once, no checkpoint.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    run_with_ctrl_c(run_config(twice.string(), "  accum_grad_iters: 1\n"), /*at=*/1, /*times=*/2);
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGINT);
  CHECK_FALSE(latest_checkpoint(twice));

  // Once, during the second step: that step completes, is saved, and the run stops.
  struct sigaction before {};
  ::sigaction(SIGINT, nullptr, &before);
  auto result = run_with_ctrl_c(run_config(once.string(), "  accum_grad_iters: 1\n"), /*at=*/1, /*times=*/1);
  CHECK(result.stop_signal == SIGINT);
  CHECK(result.global_step == 2);
  CHECK(result.losses.size() == 2);
  CHECK(latest_checkpoint(once) == checkpoints_dir(once) / "step_000000002");
  struct sigaction after {};
  ::sigaction(SIGINT, nullptr, &after);
  CHECK(after.sa_handler == before.sa_handler);  // the caller's handler is back
  fs::remove_all(twice), fs::remove_all(once);
}

// run_config with `key: value` in place of its own line, or added.
Config with_value(const fs::path& dir, const std::string& key, const std::string& value) {
  auto yaml = run_config(dir.string()).to_yaml();
  const auto at = yaml.find("  " + key + ":");
  const auto line = fmt::format("  {}: {}\n", key, value);
  if (at == std::string::npos) yaml += line;
  else yaml.replace(at, yaml.find('\n', at) + 1 - at, line);
  return Config(parse_yaml(yaml, "runner test config"), "runner test config");
}

TEST_CASE("runner: values outside their key's range are refused, a warmup as long as the run is warned about") {
  const auto dir = fresh("bad_values");
  // The ranges are declared with the keys (framework/config_schema.cpp), checked as a config resolves.
  for (const auto& [key, value, expected] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"log_freq", "-1", "an integer >= 1"},
           {"log_freq", "0", "an integer >= 1"},
           {"save_every_iters", "-5", "an integer >= 0"},
           {"keep_last_checkpoints", "-1", "an integer >= 0"},
           {"accum_grad_iters", "0", "an integer >= 1"},
           {"warmup_steps", "-2", "an integer >= 0"},
           {"init_lr", "-1", "a number >= 0"},  // LibTorch's AdamW threw "Invalid learning rate" with a backtrace
           {"init_lr", ".nan", "a number >= 0"},
           {"min_lr", "-0.0001", "a number >= 0"},  // the cosine decay would end in gradient ascent
           {"weight_decay", "-0.5", "a number >= 0"},
           {"dist_timeout", "0", "a number > 0"}}) {
    INFO(key << ": " << value);
    const auto cfg = with_value(dir, key, value);
    CHECK_THROWS_WITH(validate_config_schema(cfg.node()),
                      Catch::StartsWith(fmt::format("run.{} in runner test config (line ", key)) &&
                          Catch::Contains(fmt::format("expected {}, got ", expected)));
  }
  CHECK_NOTHROW(validate_config_schema(with_value(dir, "init_lr", "0").node()));

  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  make_runner(inputs(run_config(dir.string())));  // 2 warmup steps of 8
  CHECK(log.str().find("warmup") == std::string::npos);
  make_runner(inputs(with_value(dir, "warmup_steps", "8")));
  spdlog::default_logger()->sinks().pop_back();
  CHECK_THAT(log.str(), Catch::Contains("run.warmup_steps (8) is not shorter than the whole run") &&
                            Catch::Contains("never reaches run.init_lr"));
  fs::remove_all(dir);
}

TEST_CASE("runner: resuming with another iters_per_epoch than the checkpoint's is refused, naming both") {
  torch::set_num_threads(1);
  const auto dir = fresh("ipe");
  const std::string extra = "  save_every_iters: 3\n  accum_grad_iters: 1\n";
  REQUIRE(run(run_config(dir.string(), extra), 2, std::nullopt).losses.size() == 8);  // 2 epochs x 4
  const auto step3 = checkpoints_dir(dir) / "step_000000003", step6 = checkpoints_dir(dir) / "step_000000006";
  auto resume_with = [&](const fs::path& ckpt, int64_t ipe) {
    return run(with_value(dir, "iters_per_epoch", std::to_string(ipe)), 2, ckpt);
  };
  // Epoch 0, iteration 3: past the end of an epoch of 2.
  CHECK_THROWS_WITH(resume_with(step3, 2), Catch::Contains(step3.string()) &&
                                               Catch::Contains("epoch 0, iteration 3, step 3") &&
                                               Catch::Contains("run.iters_per_epoch 4, this run has 2"));
  // Epoch 1, iteration 2 at step 6: epochs of 3 would put it at step 5.
  CHECK_THROWS_WITH(resume_with(step6, 3), Catch::Contains("run.iters_per_epoch 4, this run has 3"));
  // Within epoch 0 a longer epoch continues it: 5 - 3 + 5 steps.
  CHECK(resume_with(step3, 5).losses.size() == 7);
  fs::remove_all(dir);
}

namespace {

// The generated source whose batches at the given calls carry NaN images: the loss and every gradient
// of those steps are NaN.
class NanSource : public BatchSource {
 public:
  NanSource(std::unique_ptr<BatchSource> inner, std::function<bool(int64_t)> poisoned)
      : inner_(std::move(inner)), poisoned_(std::move(poisoned)) {}
  Batch next() override {
    auto b = inner_->next();
    if (poisoned_(calls_++)) b.image.fill_(std::numeric_limits<float>::quiet_NaN());
    return b;
  }
  nlohmann::json state() const override { return inner_->state(); }
  void restore(const nlohmann::json& s) override { inner_->restore(s); }

 private:
  std::unique_ptr<BatchSource> inner_;
  std::function<bool(int64_t)> poisoned_;
  int64_t calls_ = 0;
};

bool all_finite(torch::nn::Module& model) {
  for (const auto& p : model.parameters())
    if (!p.isfinite().all().item<bool>()) return false;
  return true;
}

}  // namespace

TEST_CASE("runner: a step with non-finite gradients is skipped, ten in a row stop the run") {
  torch::set_num_threads(1);
  const auto dir = fresh("nan"), dir_all = fresh("nan_all");
  auto run_nan = [](const Config& cfg, std::function<bool(int64_t)> poisoned, ChatBridge model) {
    auto task = std::make_shared<GeneratedTask>(2);
    RunnerInputs in{cfg,
                    task,
                    model.ptr(),
                    std::make_unique<NanSource>(task->build_train_source(cfg, 0, 1), std::move(poisoned)),
                    dist::ProcessGroup::init(dist::DistEnv{}),
                    std::nullopt};
    return make_runner(std::move(in))->train();
  };
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);

  // One poisoned batch: its step is skipped, the weights stay finite, later losses are finite, and the
  // run ends with its plot (a null loss in metrics.jsonl used to stop the plot).
  auto model = tiny_chatbridge();
  const auto result = run_nan(
      run_config(dir.string(), "  accum_grad_iters: 1\n"), [](int64_t call) { return call == 1; }, model);
  REQUIRE(result.losses.size() == 8);
  CHECK(std::isnan(result.losses[1]));
  for (size_t i : {0, 2, 3, 7}) CHECK(std::isfinite(result.losses[i]));
  CHECK(all_finite(*model));
  CHECK_THAT(log.str(), Catch::Contains("step 2: the gradients hold NaN or inf: this optimiser step is skipped"));
  CHECK(fs::exists(dir / "loss_lr.svg"));

  // Every batch poisoned: the tenth skipped step in a row stops the run.
  CHECK_THROWS_WITH(run_nan(
                        with_value(dir_all, "max_epoch", "3"), [](int64_t) { return true; }, tiny_chatbridge()),
                    Catch::Contains("step 10: the gradients hold NaN or inf for the 10th optimiser step in a row"));
  spdlog::default_logger()->sinks().pop_back();
  fs::remove_all(dir), fs::remove_all(dir_all);
}

TEST_CASE("runner: the end of a run logs the samples the data skipped, per dataset") {
  torch::set_num_threads(1);
  const auto dir = fresh("skips");
  // The generated source, reporting that one of its two datasets skipped 3 of the samples it tried.
  class Skipping : public BatchSource {
   public:
    explicit Skipping(std::unique_ptr<BatchSource> inner) : inner_(std::move(inner)) {}
    Batch next() override { return ++calls_, inner_->next(); }
    nlohmann::json state() const override { return inner_->state(); }
    void restore(const nlohmann::json& s) override { inner_->restore(s); }
    std::map<std::string, SkipCount> skip_counts() const override {
      return {{"ti--cc3m/cc3m", {2 * calls_, 3}}, {"ta--audio/audio", {5, 0}}};
    }

   private:
    std::unique_ptr<BatchSource> inner_;
    int64_t calls_ = 0;
  };
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  const auto cfg = run_config(dir.string(), "  accum_grad_iters: 1\n");
  auto task = std::make_shared<GeneratedTask>(2);
  RunnerInputs in{cfg,
                  task,
                  tiny_chatbridge().ptr(),
                  std::make_unique<Skipping>(task->build_train_source(cfg, 0, 1)),
                  dist::ProcessGroup::init(dist::DistEnv{}),
                  std::nullopt};
  make_runner(std::move(in))->train();
  spdlog::default_logger()->sinks().pop_back();
  CHECK_THAT(log.str(),
             Catch::Contains("data: 3 of 21 samples skipped as unreadable or malformed: ti--cc3m/cc3m 3 of 16"));
  fs::remove_all(dir);
}
