// Shared app options: CLI parsing, rank from the torchrun environment, rank-aware log levels.
#include <CLI/CLI.hpp>
#include <catch2/catch.hpp>
#include <cstdlib>

#include "framework/app_options.h"
#include "framework/error.h"
#include "framework/logging.h"

namespace {
struct EnvGuard {  // sets RANK / WORLD_SIZE for one test, restores "unset" afterwards
  EnvGuard(const char* rank, const char* world) {
    ::setenv("RANK", rank, 1);
    ::setenv("WORLD_SIZE", world, 1);
  }
  ~EnvGuard() {
    ::unsetenv("RANK");
    ::unsetenv("WORLD_SIZE");
  }
};

cb::AppOptions parse(std::vector<std::string> args) {
  CLI::App app;
  cb::AppOptions opts;
  cb::add_app_options(app, opts);
  std::reverse(args.begin(), args.end());  // CLI11 takes the vector back to front
  app.parse(args);
  return opts;
}
}  // namespace

TEST_CASE("app options parse with their defaults") {
  auto d = parse({});
  CHECK(d.threads == 0);
  CHECK(d.log_level == "info");
  CHECK_FALSE(d.log_all_ranks);
  auto o = parse({"--threads", "3", "--log-level", "debug", "--log-all-ranks"});
  CHECK(o.threads == 3);
  CHECK(o.log_level == "debug");
  CHECK(o.log_all_ranks);
  CHECK_THROWS_AS(parse({"--log-level", "loud"}), CLI::ValidationError);
  CHECK_THROWS_AS(parse({"--threads", "-2"}), CLI::ValidationError);
}

TEST_CASE("log level is honoured on rank 0 and other ranks log warnings unless all ranks are asked for") {
  cb::AppOptions opts;
  opts.threads = 1, opts.log_level = "debug";
  {
    EnvGuard env("0", "2");
    cb::apply_app_options(opts);
    CHECK(spdlog::default_logger()->level() == spdlog::level::debug);
    CHECK(cb::log_rank() == 0);
  }
  {
    EnvGuard env("1", "2");
    cb::apply_app_options(opts);
    CHECK(spdlog::default_logger()->level() == spdlog::level::warn);
    CHECK(cb::log_rank() == 1);
    opts.log_all_ranks = true;
    cb::apply_app_options(opts);
    CHECK(spdlog::default_logger()->level() == spdlog::level::debug);
  }
}

TEST_CASE("a malformed torchrun environment is an error naming the variable") {
  {
    EnvGuard env("2", "2");
    CHECK_THROWS_WITH(cb::rank_from_env(), Catch::Contains("RANK=2 is not below WORLD_SIZE=2"));
  }
  {
    EnvGuard env("x", "2");
    CHECK_THROWS_WITH(cb::rank_from_env(), Catch::Contains("environment variable RANK='x'"));
  }
  auto r = cb::rank_from_env();
  CHECK(r.rank == 0);
  CHECK(r.world_size == 1);
}

TEST_CASE("app options: --options takes the rest of the command line, a flag after it is an error") {
  auto remainder = [](std::vector<std::string> args, int& cli_argc) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return cb::take_options_remainder(static_cast<int>(argv.size()), argv.data(), cli_argc);
  };
  int cli_argc = 0;
  CHECK(remainder({"train", "--cfg-path", "a.yaml", "--options", "run.seed=1", "run.init_lr", "-3"}, cli_argc) ==
        std::vector<std::string>{"run.seed=1", "run.init_lr", "-3"});
  CHECK(cli_argc == 3);
  CHECK(remainder({"train", "--cfg-path", "a.yaml"}, cli_argc).empty());
  CHECK(cli_argc == 3);
  CHECK_THROWS_WITH(remainder({"eval", "--options", "model.ckpt=x", "--threads", "2"}, cli_argc),
                    Catch::Contains("--threads after --options") && Catch::Contains("put the flag before it"));
}
