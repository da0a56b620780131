// 2 ranks with batch b give the same per-step losses as 1 rank with batch 2b (runner_base + GradSync).
#include <catch2/catch.hpp>

#include <fstream>

#include "framework/distributed/launcher.h"
#include "tests/support/process_util.h"
#include "tests/support/scratch_dir.h"

using namespace cb::test;

namespace {
void run_workers(const std::filesystem::path& out, int world, int batch) {
  auto port = std::to_string(cb::dist::free_tcp_port());
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r)
    pids.push_back(
        spawn({CB_RUNNER_WORKER, out.string(), std::to_string(batch)}, torchrun_env(r, world, port), out / "log.txt"));
  for (pid_t p : pids) REQUIRE(wait_exit(p) == 0);
}
}  // namespace

TEST_CASE("runner: 2 ranks x batch 2 == 1 rank x batch 4 (per-step losses within 1e-5)") {
  auto one = fresh_dir("runner_one"), two = fresh_dir("runner_two");
  run_workers(one, 1, 4);
  run_workers(two, 2, 2);
  auto a = read_losses(one / "losses.txt"), b = read_losses(two / "losses.txt");
  REQUIRE(a.size() == 8);
  REQUIRE(b.size() == a.size());
  double max_err = 0;
  for (size_t i = 0; i < a.size(); ++i) max_err = std::max(max_err, std::abs(a[i] - b[i]));
  std::cout << "[runner] 2-rank vs 1-rank per-step loss max_err=" << max_err << " bound=1e-5\n";
  CHECK(max_err <= 1e-5);
  std::filesystem::remove_all(one), std::filesystem::remove_all(two);
}

namespace {
// 2 ranks resuming with --resume auto, each with its own run.output_dir (as a node sees it) and
// working directory; returns each rank's exit code. A short collective timeout bounds a mismatch.
std::vector<int> resume_workers(const std::vector<std::filesystem::path>& cwd, const std::vector<std::string>& out,
                                const std::filesystem::path& log) {
  auto port = std::to_string(cb::dist::free_tcp_port());
  std::vector<pid_t> pids;
  for (int r = 0; r < 2; ++r) {
    auto env = torchrun_env(r, 2, port);
    env["CHATBRIDGE_DIST_TIMEOUT"] = "20";
    pids.push_back(
        spawn({"/bin/sh", "-c",
               "cd '" + cwd[r].string() + "' && exec '" CB_RUNNER_WORKER "' '" + out[r] + "' 2 --resume auto"},
              env, log));
  }
  std::vector<int> codes;
  for (pid_t p : pids) codes.push_back(wait_exit(p));
  return codes;
}
}  // namespace

TEST_CASE(
    "runner: every rank resumes from rank 0's checkpoint, or every rank fails naming the rank that cannot read it") {
  namespace fs = std::filesystem;
  const auto node0 = fresh_dir("resume_node0"), node1 = fresh_dir("resume_node1");
  // A 2-rank run of 8 steps leaves step_4 and step_8; without step_8 a resume runs steps 4..7 again.
  fs::create_directories(node0 / "out");
  run_workers(node0 / "out", 2, 2);
  const auto full = read_losses(node0 / "out" / "losses.txt");
  REQUIRE(full.size() == 8);
  fs::remove_all(node0 / "out" / "checkpoints" / "step_000000008");
  fs::remove(node0 / "out" / "losses.txt");

  SECTION("a rank whose view lists no checkpoint follows rank 0 (a network file system's stale listing)") {
    // Rank 1's run.output_dir is empty, but rank 0's checkpoint is readable by its path.
    auto codes =
        resume_workers({node0, node0}, {(node0 / "out").string(), (node1 / "out").string()}, node1 / "log.txt");
    CHECK(codes == std::vector<int>{0, 0});
    const auto resumed = read_losses(node0 / "out" / "losses.txt");
    REQUIRE(resumed.size() == 4);
    for (size_t i = 0; i < 4; ++i) CHECK(std::abs(resumed[i] - full[4 + i]) <= 1e-6);
  }
  SECTION("run.output_dir not shared: rank 1 cannot read rank 0's checkpoint, both ranks stop and say why") {
    // The same relative run.output_dir in each rank's working directory, as on two hosts' local disks.
    auto codes = resume_workers({node0, node1}, {"out", "out"}, node1 / "log.txt");
    CHECK(codes == std::vector<int>{1, 1});
    std::ifstream in(node1 / "log.txt");
    const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    INFO(log);
    CHECK(log.find("resumes from 'out/checkpoints/step_000000004', which rank 1 (host ") != std::string::npos);
    CHECK(
        log.find(
            "which found no checkpoint) cannot read: run.output_dir 'out' must be on a file system every node sees") !=
        std::string::npos);
  }
  fs::remove_all(node0), fs::remove_all(node1);
}
