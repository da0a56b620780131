// 2 ranks with batch b give the same per-step losses as 1 rank with batch 2b (runner_base + GradSync).
#include <catch2/catch.hpp>

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
