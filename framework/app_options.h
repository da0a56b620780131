// Command-line options every chatbridge binary shares, and the one call that applies them.
//
//   CLI::App app{"..."};
//   cb::AppOptions opts;
//   cb::add_app_options(app, opts);
//   CLI11_PARSE(app, argc, argv);
//   cb::apply_app_options(opts);   // logging (rank-aware) + LibTorch threads + BLAS report
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace cb {

struct AppOptions {
  int threads = 0;                 // --threads: LibTorch intra-op threads, 0 = the cores available
  std::string log_level = "info";  // --log-level: trace, debug, info, warn, error, critical, off
  bool log_all_ranks = false;      // --log-all-ranks: ranks > 0 log at --log-level too (default: warn+)
};

void add_app_options(CLI::App& app, AppOptions& opts);

// Process rank and world size from the torchrun environment (RANK, WORLD_SIZE); 0/1 when unset.
struct RankInfo {
  int rank = 0;
  int world_size = 1;
};
RankInfo rank_from_env();

// init_logging(rank, world, level, all_ranks) then init_runtime(threads).
void apply_app_options(const AppOptions& opts);

// train.py's `--options` takes the rest of the command line (argparse REMAINDER), values starting
// with '-' included: returns those tokens and sets `cli_argc` to the arguments before it.
std::vector<std::string> take_options_remainder(int argc, char** argv, int& cli_argc);

// An app configured by a yaml and `--options` (train, eval, chat, probe): the `--options` footer, the
// shared options, then CLI11's parse of the first `cli_argc` arguments. Returns the exit code when the
// program is to stop here (--help, a parse error), nullopt when it goes on.
std::optional<int> parse_config_app(CLI::App& app, AppOptions& opts, int cli_argc, char** argv);

// main() of an app: runs `run` and turns an escaping exception into "<name>: error: <what>", exit 1.
int run_main(const char* name, int (*run)(int, char**), int argc, char** argv);

}  // namespace cb
