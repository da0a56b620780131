// chatbridge-bench: the benchmarks of docs/benchmarks.md (train1, train2, decode, data, all) on a workload file,
// printed as one JSON object on stdout (logs go to stderr).
//
//   chatbridge-bench all --workload tests/bench/small.json --tokenizer tests/golden/tokenizer.model
//   chatbridge-bench decode --workload WORKLOAD.json --threads 2    (a workload of your own, same format)
#include <CLI/CLI.hpp>

#include <cstdio>

#include "bench/run.h"
#include "framework/app_options.h"
#include "framework/logging.h"
#include "framework/runtime.h"

namespace {

int run(int argc, char** argv) {
  CLI::App app{"ChatBridge benchmarks (docs/benchmarks.md): prints one JSON object"};
  std::string workload_file, log_level = "warn";
  int threads = 0;
  double peak_flops = 0;
  cb::bench::BenchOptions opts;
  app.require_subcommand(1);
  for (const char* part : {"train1", "train2", "decode", "data", "all"}) {
    auto* sub = app.add_subcommand(part, std::string("run the ") + part + " benchmark(s)");
    sub->add_option("--workload", workload_file,
                    "workload JSON (e.g. tests/bench/small.json; format: docs/benchmarks.md)")
        ->required();
    sub->add_option("--threads", threads, "intra-op and BLAS threads (default: the workload's)");
    sub->add_option("--tokenizer", opts.tokenizer, "tokenizer.model (default: the workload's, found upward)");
    sub->add_option("--work-dir", opts.work_dir, "scratch directory for the generated media (reused)");
    sub->add_option("--peak-flops", peak_flops, "device peak FLOP/s: the train benches then print MFU");
    sub->add_option("--profile-ops", opts.profile_top,
                    "train parts: after timing, profile the steps op by op and list the N ops with most self time");
    sub->add_option("--log-level", log_level, "trace, debug, info, warn, error");
  }
  CLI11_PARSE(app, argc, argv);
  opts.part = app.get_subcommands().front()->get_name();
  cb::init_logging(0, 1, log_level);
  auto w = cb::bench::Workload::load(workload_file);
  opts.threads = cb::configure_threads(threads > 0 ? threads : w.threads);
  if (peak_flops > 0) opts.peak_flops = peak_flops;
  auto out = cb::bench::run_benchmark(w, opts);
  std::printf("%s\n", out.dump(1).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cb::run_main("chatbridge-bench", run, argc, argv); }
