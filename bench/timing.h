// The timing protocol of docs/benchmarks.md: untimed warm-ups, then repeats each clocked on its
// own with steady_clock; the median is the headline, the min the best. Plus the run's context
// (peak RSS, machine, LibTorch, BLAS, commit).
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace cb::bench {

// The median of `values` (Python's statistics.median: the mean of the middle two for an even count).
// Fails when there are none.
double median(std::vector<double> values);

struct Timings {
  std::vector<double> seconds;      // wall clock of every timed repeat, in order
  std::vector<double> cpu_seconds;  // process CPU time (user + sys, all threads) of the same repeats
  double median() const;
  double min() const;
  // {"median", "min", "repeats", "cpu_median", "cpu_repeats"}: on a loaded machine the CPU time shows
  // the work done while the wall clock also counts the time other processes held the cores.
  nlohmann::json to_json() const;
};

// `warmup` untimed calls of `fn`, then `repeats` timed ones.
Timings time_repeats(int64_t warmup, int64_t repeats, const std::function<void()>& fn);

// Waits for the work queued on `device` (CUDA kernels run asynchronously); nothing to wait for on the CPU.
// A phase timed on a GPU ends with this, or its clock stops before its kernels do.
void sync_device(torch::Device device);

// Process CPU time so far (CLOCK_PROCESS_CPUTIME_ID), seconds.
double process_cpu_seconds();

// getrusage(RUSAGE_SELF).ru_maxrss in MiB.
double peak_rss_mb();

// CPU model, cores available, load average, LibTorch version, BLAS, git commit of the source tree.
nlohmann::json machine_info();

}  // namespace cb::bench
