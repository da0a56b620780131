// Runner test worker: the tiny model on generated data through runner_base, in whatever job the
// torchrun environment describes. Writes its per-step losses to <out>/losses.txt (rank 0).
//   cb_runner_test_worker <out> <batch per rank> [--resume auto]
#define CATCH_CONFIG_RUNNER  // Catch's implementation for golden.cpp's checks, without its main
#include <catch2/catch.hpp>
#include <fstream>
#include <iostream>

#include "framework/distributed/process_group.h"
#include "runners/train/runner_base.h"
#include "tests/runners/train/runner_fixture.h"

int main(int argc, char** argv) {
  if (argc != 3 && !(argc == 5 && std::string(argv[3]) == "--resume")) return 2;
  try {
    torch::set_num_threads(1);
    std::string out = argv[1];
    int64_t batch = std::stoll(argv[2]);
    auto env = cb::dist::dist_env_from_environment();
    auto pg = cb::dist::ProcessGroup::init(env);
    auto cfg = cb::test::run_config(out);
    auto resume = argc == 5 ? cb::resolve_resume(cfg, argv[4], env.restart_count) : std::nullopt;
    auto task = std::make_shared<cb::test::GeneratedTask>(batch);
    cb::RunnerInputs in{
        cfg, task,  cb::test::tiny_chatbridge().ptr(), task->build_train_source(cfg, pg->rank(), pg->world_size()),
        pg,  resume};
    auto r = cb::make_runner(std::move(in))->train();
    if (pg->rank() == 0) {
      std::ofstream f(std::filesystem::path(out) / "losses.txt");
      f.precision(17);
      for (double l : r.losses) f << l << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "runner worker: " << e.what() << "\n";
    return 1;
  }
}
