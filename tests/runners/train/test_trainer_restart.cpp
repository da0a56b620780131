// Integration: the real trainer under chatbridge-launch survives a kill -9. 2 ranks train the tiny
// stage-1 config (frozen LLaMA from a short stage-0 run, the tiny dataset built by
// scripts/make-tiny-data) with mid-epoch checkpoints; one worker is killed with SIGKILL mid-run, the
// launcher (--max-restarts 1) restarts the group, which resumes from the latest checkpoint. Every
// per-step loss in metrics.jsonl (the replayed steps included) equals the uninterrupted run's.
#include <signal.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "framework/checkpoint/safetensors.h"
#include "framework/distributed/launcher.h"
#include "tests/support/process_util.h"
#include "tests/support/scratch_dir.h"
#include "tests/support/tiny_data.h"

namespace fs = std::filesystem;
using namespace cb::test;

namespace {

const fs::path kSource = CHATBRIDGE_SOURCE_DIR;
constexpr int64_t kSteps = 12;

// step -> every loss metrics.jsonl holds for it (a restarted run logs the replayed steps again).
std::map<int64_t, std::vector<double>> logged_losses(const fs::path& run_dir) {
  std::map<int64_t, std::vector<double>> out;
  std::ifstream in(run_dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j["loss"].is_number()) continue;  // a line cut by the kill
    out[j["step"].get<int64_t>()].push_back(j["loss"].get<double>());
  }
  return out;
}

// The child of `parent` whose environment has RANK=<rank>.
std::optional<pid_t> worker_pid(pid_t parent, int rank) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string s((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close = s.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    long ppid = 0;
    if (std::sscanf(s.c_str() + close + 1, " %c %ld", &state, &ppid) != 2 || ppid != parent) continue;
    std::ifstream env(e.path() / "environ");
    std::string vars((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
    if (vars.find(std::string("\0RANK=", 6) + std::to_string(rank) + '\0') != std::string::npos)
      return static_cast<pid_t>(std::stol(name));
  }
  return std::nullopt;
}

std::vector<std::string> train_argv(const fs::path& out, const fs::path& llama, int max_restarts) {
  return {CB_LAUNCH,
          "--standalone",
          "--nproc-per-node",
          "2",
          "--max-restarts",
          std::to_string(max_restarts),
          "--master-port",
          std::to_string(cb::dist::free_tcp_port()),
          "--monitor-interval",
          "0.05",
          CB_TRAIN,
          "--threads",
          "1",
          "--cfg-path",
          "train_configs/tiny_pretrain.yaml",
          "--options",
          "run.output_dir=" + out.string(),
          "model.llama_model=" + llama.string(),
          "run.max_epoch=1",
          "run.iters_per_epoch=" + std::to_string(kSteps),
          "run.warmup_steps=2",
          "run.log_freq=1",
          "run.save_every_iters=4",
          "run.keep_last_checkpoints=2"};
}

}  // namespace

TEST_CASE(
    "kill -9 of a real trainer worker: chatbridge-launch restarts it from the latest checkpoint and the "
    "per-step losses equal an uninterrupted run's") {
  // The working directory holds what the tiny configs name by relative paths.
  const auto dir = fresh_dir("trainer_restart");
  for (const char* d : {"train_configs", "instructiontuning_configs", "tests"})
    fs::create_directory_symlink(kSource / d, dir / d);
  const auto previous = fs::current_path();
  fs::current_path(dir);
  make_tiny_data(dir / "tiny_data", dir / "make-tiny-data.txt");

  // A few stage-0 steps give the frozen LLaMA directory stage 1 loads.
  REQUIRE(wait_exit(spawn({CB_TRAIN, "--threads", "1", "--cfg-path", "train_configs/tiny_lm_pretrain.yaml", "--options",
                           "run.output_dir=" + (dir / "lm").string(), "run.max_epoch=1", "run.iters_per_epoch=3",
                           "run.warmup_steps=1"},
                          {}, dir / "lm.txt")) == 0);
  const auto llama = dir / "lm" / "llama";
  REQUIRE(fs::exists(llama / "config.json"));

  const auto clean = dir / "clean", killed = dir / "killed";
  REQUIRE(wait_exit(spawn(train_argv(clean, llama, 0), {}, dir / "clean.txt")) == 0);

  const pid_t launcher = spawn(train_argv(killed, llama, 1), {}, dir / "killed.txt");
  // Kill rank 1 once step 5 is logged: the step-4 checkpoint is complete by then (saved before step 4 ran).
  bool sent = false;
  for (auto t0 = std::chrono::steady_clock::now();
       !sent && std::chrono::steady_clock::now() - t0 < std::chrono::minutes(5);) {
    auto seen = logged_losses(killed);
    if (!seen.empty() && seen.rbegin()->first >= 5) {
      auto pid = worker_pid(launcher, 1);
      REQUIRE(pid);
      REQUIRE(::kill(*pid, SIGKILL) == 0);
      sent = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(sent);
  REQUIRE(wait_exit(launcher) == 0);

  const auto a = logged_losses(clean), b = logged_losses(killed);
  REQUIRE(a.size() == kSteps);
  REQUIRE(b.size() == kSteps);
  size_t replayed = 0;
  double max_err = 0;
  for (const auto& [step, losses] : b) {
    REQUIRE(a.count(step));
    replayed += losses.size() - 1;
    for (double l : losses) max_err = std::max(max_err, std::abs(l - a.at(step).front()));
  }
  std::cout << "[runner] killed+restarted vs uninterrupted per-step losses: " << replayed
            << " steps replayed, max_err=" << max_err << " bound=1e-06\n";
  CHECK(replayed > 0);  // the restart resumed from a checkpoint before the kill
  CHECK(max_err <= 1e-6);
  // It trains: the mean loss of the last four steps is below the first four's (single steps differ by
  // which dataset the mixture drew).
  double first_four = 0, last_four = 0;
  for (int64_t k = 0; k < 4; ++k) first_four += a.at(k).front() / 4, last_four += a.at(kSteps - 1 - k).front() / 4;
  CHECK(last_four < first_four);

  // The final trainable parameters agree as well.
  auto last = [](const fs::path& run) { return run / "checkpoints" / "step_000000012" / "model.safetensors"; };
  cb::SafetensorsFile fa(last(clean)), fb(last(killed));
  double param_err = 0;
  for (const auto& e : fa.entries())
    param_err = std::max(param_err, (fa.tensor(e.name) - fb.tensor(e.name)).abs().max().item<double>());
  std::cout << "[runner] final parameters: max_err=" << param_err << " bound=1e-06\n";
  CHECK(param_err <= 1e-6);

  fs::current_path(previous);
  fs::remove_all(dir);
}
