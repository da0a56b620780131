// Threads for the row kernels: fn(begin, end) over [0, n) in chunks claimed one by one by LibTorch's
// OpenMP threads.
//
// Why not at::parallel_for: its OpenMP region is inline in ATen's headers, and this tree is compiled
// without -fopenmp (the precompiled header's flags), so there it runs the whole range on the calling
// thread (row_threads.cpp alone is compiled with OpenMP: framework/CMakeLists.txt). Why OpenMP's threads
// and not a pool of our own: after each parallel ATen op the OpenMP workers spin for a while, so a second
// pool finds the other core taken (measured: q4_0 decode 158 tok/s with a pool of ours, 207 with
// OMP_WAIT_POLICY=PASSIVE). Each thread claims the chunks of a contiguous range of its own, then what is
// left of the others' ranges, so a thread that starts late (another process on its core) leaves its
// share to the others while each thread still streams its weights in order; but OpenMP's
// closing barrier still waits for it, so when a call waited that way the next calls run on the caller
// alone for a while (a busy machine: single-thread speed instead of a time slice per call).
#pragma once

#include <cstdint>

namespace cb::kernels {

namespace detail {
using ChunkFn = void (*)(const void* ctx, int64_t begin, int64_t end);
void run_chunks(int64_t n, int64_t grain, ChunkFn fn, const void* ctx);
}  // namespace detail

// Calls fn(begin, end) over [0, n) in pieces that are whole multiples of `grain` (>= 1; the last piece of
// [0, n) may end short), on up to at::get_num_threads() threads (the caller included); once over [0, n)
// on the caller when that is 1, when n <= grain, inside a parallel region, or for a while after a late
// thread. A thread's first pieces are a share of its range, its last ones a single chunk of `grain`.
// fn must not throw. Nothing is allocated per call.
template <class Fn>
void parallel_rows(int64_t n, int64_t grain, const Fn& fn) {
  detail::run_chunks(
      n, grain, [](const void* ctx, int64_t b, int64_t e) { (*static_cast<const Fn*>(ctx))(b, e); }, &fn);
}

}  // namespace cb::kernels
