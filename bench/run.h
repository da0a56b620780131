// What `chatbridge-bench <part>` runs and the one JSON object it prints: the headline keys of
// docs/benchmarks.md (medians, *_min for times, *_best for rates, peak RSS, context) and a
// `detail` section with every repeat and the shapes run.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "bench/workload.h"

namespace cb::bench {

struct BenchOptions {
  std::string part = "all";          // train1, train2, decode, data, kernels, all
  std::filesystem::path tokenizer;   // empty: from the workload
  std::filesystem::path work_dir;    // media scratch directory; empty: default_work_dir()
  std::optional<double> peak_flops;  // FLOP/s of the device, for MFU
  int threads = 0;                   // as configured (reported)
  int profile_top = 0;               // > 0: train parts add an op profile of this many ops
};

nlohmann::json run_benchmark(const Workload& w, const BenchOptions& opts);

}  // namespace cb::bench
