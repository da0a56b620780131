// `chatbridge-bench kernels` (docs/benchmarks.md, kernels): the frozen-linear kernels
// (framework/kernels/linear.h) on the linear layers of the workload's LLaMA — every layer's q/k/v/o,
// gate/up/down and the lm_head, with random weights in each storage format — as one decode token reads
// them (M = 1: time, GB/s of weights, and that as a share of the read bandwidth measured in the same run),
// then at small and prefill batch sizes and the input gradient of a training step. Beside them the
// peers: torch::matmul on the fp32 weights and on bf16 weights with bf16 activations.
#pragma once
#include <nlohmann/json.hpp>

#include "bench/workload.h"

namespace cb::bench {

// Bytes per second that at::get_num_threads() threads read from a buffer of `bytes` (far larger than
// the caches): the median of `repeats` passes, each thread summing its share.
double read_bandwidth(int64_t bytes = int64_t{1} << 30, int repeats = 5);

nlohmann::json run_kernels(const Workload& w);

}  // namespace cb::bench
