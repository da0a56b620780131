#include "framework/app_options.h"

#include <iostream>
#include <string_view>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>

#include "framework/crash_report.h"
#include "framework/error.h"
#include "framework/logging.h"
#include "framework/runtime.h"
#include "framework/text/parse_number.h"

namespace cb {
namespace {

int env_int(const char* name, int fallback, int min) {
  const char* s = std::getenv(name);
  return s && *s ? parse_int(s, fmt::format("environment variable {}", name), min) : fallback;
}

}  // namespace

void add_app_options(CLI::App& app, AppOptions& opts) {
  app.add_option("--threads", opts.threads, "LibTorch intra-op threads (0 = the cores available)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--log-level", opts.log_level, "trace, debug, info, warn, error, critical or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  app.add_flag("--log-all-ranks", opts.log_all_ranks, "ranks > 0 log at --log-level too (default: warnings only)");
}

std::optional<int> parse_config_app(CLI::App& app, AppOptions& opts, int cli_argc, char** argv) {
  app.footer("--options KEY=VALUE ... | KEY VALUE ...   override config keys (the rest of the command line)");
  add_app_options(app, opts);
  try {
    app.parse(cli_argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return std::nullopt;
}

RankInfo rank_from_env() {
  RankInfo r;
  r.world_size = env_int("WORLD_SIZE", 1, 1);
  r.rank = env_int("RANK", 0, 0);
  if (r.rank >= r.world_size) fail("environment: RANK={} is not below WORLD_SIZE={}", r.rank, r.world_size);
  return r;
}

void apply_app_options(const AppOptions& opts) {
  auto r = rank_from_env();
  init_logging(r.rank, r.world_size, opts.log_level, opts.log_all_ranks);
  init_runtime(opts.threads);
}

std::vector<std::string> take_options_remainder(int argc, char** argv, int& cli_argc) {
  cli_argc = argc;
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) == "--options") {
      cli_argc = i;
      for (int k = i + 1; k < argc; ++k)  // a flag here would be taken for a config key
        if (std::string_view(argv[k]).starts_with("--"))
          fail(
              "{} after --options: --options takes the rest of the command line as key=value items; put the "
              "flag before it",
              argv[k]);
      return {argv + i + 1, argv + argc};
    }
  return {};
}

int run_main(const char* name, int (*run)(int, char**), int argc, char** argv) {
  install_crash_report(name);
  // A peer that vanishes while we write to it (a lost host under Gloo, a closed HTTP client) must
  // surface as an EPIPE error that names it, not end the process silently with SIGPIPE (exit 141).
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    // Under a launcher every rank may print the same error: say whose it is.
    const auto r = rank_from_env();
    const auto who = r.world_size > 1 ? fmt::format(" (rank {} of {})", r.rank, r.world_size) : std::string();
    std::cerr << name << who << ": error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace cb
