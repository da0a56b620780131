#include "framework/kernels/row_threads.h"

#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>

namespace cb::kernels::detail {
namespace {

using Clock = std::chrono::steady_clock;

// A chunk takes microseconds: a caller that waits this long at the region's closing barrier after the
// last chunk was claimed waited for a thread the OS had not run (another process on its core).
constexpr auto kLateThread = std::chrono::milliseconds(1);
// Calls then run on the caller alone before threads are tried again (~17 medium decode tokens): on a
// busy machine every call would otherwise wait a time slice (measured: q4_0 decode 218 -> 12 tok/s).
constexpr int kSerialCalls = 256;

std::atomic<int> serial_calls_left{0};

}  // namespace

void run_chunks(int64_t n, int64_t grain, ChunkFn fn, const void* ctx) {
  grain = std::max<int64_t>(grain, 1);
  if (n <= 0) return;
  if (n <= grain || at::get_num_threads() <= 1 || omp_in_parallel() ||
      serial_calls_left.load(std::memory_order_relaxed) > 0) {
    if (n > grain) serial_calls_left.fetch_sub(1, std::memory_order_relaxed);
    fn(ctx, 0, n);
    return;
  }
  const int64_t chunks = (n + grain - 1) / grain;
  std::atomic<int64_t> next{0};
  Clock::time_point claimed_all;  // when the caller found no chunk left
  // The team ATen's ops use (no num_threads clause: a team of another size makes libgomp rebuild its pool).
#pragma omp parallel
  {
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < chunks;
         c = next.fetch_add(1, std::memory_order_relaxed))
      fn(ctx, c * grain, std::min(n, (c + 1) * grain));
    if (omp_get_thread_num() == 0) claimed_all = Clock::now();
  }
  if (Clock::now() - claimed_all > kLateThread) serial_calls_left.store(kSerialCalls, std::memory_order_relaxed);
}

}  // namespace cb::kernels::detail
