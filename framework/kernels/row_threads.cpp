#include "framework/kernels/row_threads.h"

#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>

namespace cb::kernels::detail {
namespace {

using Clock = std::chrono::steady_clock;

// A thread that ends its work (or finds none left) longer than this, and than twice the caller's longest
// piece, after the caller found no chunk left was a thread the OS had not run (another process on its
// core). The second bound is for chunks that take milliseconds themselves (a GEMM's): a thread finishing
// one of those is not late (medium train1, its ViT on our GEMM: flagged as late, its later calls ran on one
// thread and the step took 1.76-1.95 s instead of 0.99-1.25 s). The other threads' own end times count,
// not when the caller leaves the closing barrier: a caller that the OS holds up there itself (a busy
// machine) says nothing about the others, and took on-time threads for late ones.
constexpr auto kLateThread = std::chrono::milliseconds(1);
// After such a call the next calls run on the caller alone: a run that doubles with every late call and
// shrinks by one with every call on time, within these bounds. On a busy machine every call would
// otherwise wait a time slice (measured: q4_0 decode 218 -> 12 tok/s), and the run grows to ~17 medium
// decode tokens. On a quiet one a late call is a rare hiccup: a fixed run of 256 after each put half of
// a medium fp32 decode's calls on one thread (7 late calls in 3300; 32-45 -> 44-56 tok/s with the runs).
constexpr int kMinSerialCalls = 16, kMaxSerialCalls = 256;

// A thread's range of chunks; a cache line each, so that claiming from one's own range is not slowed by
// the others' claims.
struct alignas(64) Range {
  std::atomic<int64_t> next;
  int64_t end;
};
// A claim takes this share of what is left of a range (at least one chunk). A claim is an atomic
// read-modify-write, which waits for the thread's loads in flight. With one claim per chunk a medium q4_0
// lm_head (chunks of 3 panels, ~110 KB) streamed 45-48 GB/s where a static split of its rows streamed
// 50-53 in the same minutes; with claims of a quarter of what is left it is as fast as the split (2
// threads). The last claims are still single chunks, so the threads still end together.
constexpr int64_t kClaimShare = 4;
constexpr int kMaxRanges = 64;  // larger teams share ranges (thread t starts in range t % 64)

std::atomic<int> serial_calls_left{0};
std::atomic<int> serial_run{kMinSerialCalls};  // the length of the next run

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
  // One contiguous range of chunks per thread of the team, each with its own counter: a thread streams
  // its range in order, then takes what is left of the others'. Chunks dealt from one shared counter
  // interleave the threads' reads every chunk, and the weights then stream ~1.3x slower from memory
  // (q4_0 GEMVs of a medium decode from DRAM, 2 threads: 23-27 GB/s shared, 29-33 per-thread ranges).
  Range ranges[kMaxRanges];
  const int nr = static_cast<int>(std::clamp<int64_t>(omp_get_max_threads(), 1, std::min<int64_t>(kMaxRanges, chunks)));
  for (int i = 0; i < nr; ++i) {
    ranges[i].next.store(chunks * i / nr, std::memory_order_relaxed);
    ranges[i].end = chunks * (i + 1) / nr;
  }
  Clock::time_point claimed_all;           // when the caller found no chunk left
  Clock::duration longest{0};              // the caller's longest piece
  std::atomic<Clock::rep> others_done{0};  // when the last of the other threads ended, since the clock's epoch
  // The team ATen's ops use (no num_threads clause: a team of another size makes libgomp rebuild its pool).
#pragma omp parallel
  {
    const int t = omp_get_thread_num();
    for (int k = 0; k < nr; ++k) {
      Range& r = ranges[(t + k) % nr];
      for (;;) {
        const int64_t take = std::max<int64_t>(1, (r.end - r.next.load(std::memory_order_relaxed)) / kClaimShare);
        const int64_t c = r.next.fetch_add(take, std::memory_order_relaxed);
        if (c >= r.end) break;
        const auto start = t == 0 ? Clock::now() : Clock::time_point{};
        fn(ctx, c * grain, std::min(n, std::min(c + take, r.end) * grain));
        if (t == 0) longest = std::max(longest, Clock::now() - start);
      }
    }
    const auto done = Clock::now();
    if (t == 0) {
      claimed_all = done;
    } else {  // others_done = max(others_done, done)
      const Clock::rep end = done.time_since_epoch().count();
      Clock::rep last = others_done.load(std::memory_order_relaxed);
      while (last < end && !others_done.compare_exchange_weak(last, end, std::memory_order_relaxed)) {
      }
    }
  }
  const int run = serial_run.load(std::memory_order_relaxed);
  const Clock::time_point others_end{Clock::duration(others_done.load(std::memory_order_relaxed))};
  if (others_end - claimed_all > std::max<Clock::duration>(kLateThread, 2 * longest)) {
    serial_calls_left.store(run, std::memory_order_relaxed);
    serial_run.store(std::min(2 * run, kMaxSerialCalls), std::memory_order_relaxed);
  } else if (run > kMinSerialCalls) {
    serial_run.store(run - 1, std::memory_order_relaxed);
  }
}

}  // namespace cb::kernels::detail
