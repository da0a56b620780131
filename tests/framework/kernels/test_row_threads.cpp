// parallel_rows (framework/kernels/row_threads.h): every index exactly once, for any count and grain, on
// two threads and on teams with more threads than cores or than chunks; a thread held up leaves its range
// to the others; long chunks are not taken for a late thread, a thread that ends long after the caller
// is; a nested call and a second caller still cover their ranges.
#include <catch2/catch.hpp>

#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "framework/kernels/row_threads.h"

using cb::kernels::parallel_rows;

namespace {

// Runs parallel_rows over [0, n) and returns how often each index was visited (-1 everywhere when a range
// was empty, out of bounds or not whole chunks of `grain`; checked here, as Catch2 asserts on one thread only).
std::vector<int> visits(int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> seen(n);
  std::atomic<bool> bad_range{false};
  parallel_rows(n, grain, [&](int64_t b, int64_t e) {
    const bool whole = b == 0 && e == n;  // the serial paths take [0, n) at once
    const bool whole_chunks = b % grain == 0 && (e % grain == 0 || e == n);
    if (b < 0 || b >= e || e > n || (!whole_chunks && !whole)) bad_range = true;
    for (int64_t i = b; i < e && i < n; ++i) seen[i].fetch_add(1);
  });
  if (bad_range) return std::vector<int>(n, -1);
  return {seen.begin(), seen.end()};
}

// Whether a call of two chunks is dealt out by chunks (the threaded path) rather than taken whole by the
// caller (the serial path that follows a late thread, row_threads.cpp).
bool deals_chunks() {
  std::atomic<bool> chunked{false};
  parallel_rows(2, 1, [&](int64_t b, int64_t e) { chunked = chunked || e - b == 1; });
  return chunked;
}

}  // namespace

TEST_CASE("parallel_rows: every index once, for counts and grains around the chunking") {
  at::set_num_threads(2);
  for (const int64_t n : {0, 1, 2, 7, 64, 1000, 100003})
    for (const int64_t grain : {1, 3, 64, 5000}) {
      INFO("n " << n << " grain " << grain);
      const auto v = visits(n, grain);
      CHECK(std::all_of(v.begin(), v.end(), [](int c) { return c == 1; }));
    }
}

TEST_CASE("parallel_rows: every index once on teams of 3 and 5 (a range per thread, fewer chunks than threads)") {
  for (const int threads : {3, 5}) {
    at::set_num_threads(threads);
    for (const int64_t n : {2, 4, 7, 1000, 100003})
      for (const int64_t grain : {1, 3, 64}) {
        INFO(threads << " threads, n " << n << " grain " << grain);
        const auto v = visits(n, grain);
        CHECK(std::all_of(v.begin(), v.end(), [](int c) { return c == 1; }));
      }
  }
  at::set_num_threads(2);
}

TEST_CASE("parallel_rows: a thread held up in its range leaves the rest of the range to the others") {
  at::set_num_threads(2);
  // The caller's range (chunks 0-49 of 100) starts with a piece that sleeps; the other thread finishes its
  // own 50 and then takes the rest of the caller's. Tried a few times: on a busy machine the other thread may not run.
  bool stolen = false;
  for (int attempt = 0; attempt < 5 && !stolen; ++attempt) {
    // A late thread leaves serial calls pending (row_threads.cpp): one earlier in this process, or the other
    // thread waking slowly from its sleep for a probe call itself. Use them up, however many, until two
    // calls in a row are dealt out by chunks: the other thread is then awake, and this attempt is too.
    for (int call = 0, in_a_row = 0; call < 10000 && in_a_row < 2; ++call) in_a_row = deals_chunks() ? in_a_row + 1 : 0;
    std::mutex m;
    std::vector<std::thread::id> ran_by(100);
    parallel_rows(1000, 10, [&](int64_t b, int64_t e) {
      if (b == 0 && e < 1000) std::this_thread::sleep_for(std::chrono::milliseconds(200));
      std::lock_guard<std::mutex> lock(m);
      for (int64_t c = b / 10; c < (e + 9) / 10; ++c) ran_by[c] = std::this_thread::get_id();
    });
    for (int c = 1; c < 50; ++c) stolen = stolen || ran_by[c] != ran_by[0];
  }
  CHECK(stolen);
}

TEST_CASE("parallel_rows: chunks of milliseconds (a GEMM's) are not taken for a late thread") {
  at::set_num_threads(2);
  // Two chunks, one per thread: the caller's takes 5 ms, the other's 9 ms, so the caller waits ~4 ms at the
  // closing barrier for a thread that was running all along. The next calls must still be dealt out by
  // chunks. Only attempts where both threads ran on time count: the chunks started within 1 ms of each
  // other and the 9 ms one ended within 1.5 ms of its sleep (on a busy machine the other thread may start
  // or wake late, and then it is a late thread).
  using Clock = std::chrono::steady_clock;
  int on_time = 0;
  for (int attempt = 0; attempt < 20 && on_time < 2; ++attempt) {
    for (int call = 0, in_a_row = 0; call < 10000 && in_a_row < 2; ++call) in_a_row = deals_chunks() ? in_a_row + 1 : 0;
    std::thread::id ran_by[2];
    Clock::time_point began[2], ended[2];
    parallel_rows(2, 1, [&](int64_t b, int64_t) {
      began[b] = Clock::now();
      std::this_thread::sleep_for(std::chrono::milliseconds(b == 0 ? 5 : 9));
      ended[b] = Clock::now();
      ran_by[b] = std::this_thread::get_id();
    });
    const bool started_together = std::chrono::abs(began[1] - began[0]) < std::chrono::milliseconds(1);
    const bool not_held_up = ended[1] - began[1] < std::chrono::microseconds(10500);
    if (ran_by[0] == ran_by[1] || !started_together || !not_held_up) continue;
    ++on_time;
    CHECK(deals_chunks());
  }
  CHECK(on_time > 0);
}

TEST_CASE("parallel_rows: a thread that ends long after the caller is taken for a late thread") {
  at::set_num_threads(2);
  // Two chunks: the caller's waits until the other thread has started its own (so the caller cannot take
  // both), then ends; the other's sleeps 50 ms, as a thread that the OS ran 50 ms late would end. The next
  // calls must run on the caller alone. Only attempts where the other thread started within 5 ms count
  // (the caller's piece then stays far below half of the 50 ms: a long piece of its own would excuse it).
  using Clock = std::chrono::steady_clock;
  const auto caller = std::this_thread::get_id();
  int counted = 0;
  for (int attempt = 0; attempt < 20 && counted < 2; ++attempt) {
    for (int call = 0, in_a_row = 0; call < 10000 && in_a_row < 2; ++call) in_a_row = deals_chunks() ? in_a_row + 1 : 0;
    std::atomic<bool> other_started{false}, other_slept{false};
    Clock::duration caller_waited{};
    parallel_rows(2, 1, [&](int64_t b, int64_t) {
      const bool by_caller = std::this_thread::get_id() == caller;
      if (b == 0 && by_caller) {
        const auto t0 = Clock::now();
        while (!other_started && Clock::now() - t0 < std::chrono::milliseconds(100)) std::this_thread::yield();
        caller_waited = Clock::now() - t0;
      } else if (b == 1 && !by_caller) {
        other_started = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        other_slept = true;
      }
    });
    if (!other_slept || caller_waited > std::chrono::milliseconds(5)) continue;
    ++counted;
    CHECK_FALSE(deals_chunks());
  }
  CHECK(counted > 0);
}

TEST_CASE("parallel_rows: many calls in a row and a nested call") {
  at::set_num_threads(2);
  for (int call = 0; call < 2000; ++call) {
    const auto v = visits(97 + call % 5, 4);
    REQUIRE(std::all_of(v.begin(), v.end(), [](int c) { return c == 1; }));
  }
  std::atomic<int64_t> inner{0};
  parallel_rows(8, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) parallel_rows(10, 2, [&](int64_t x, int64_t y) { inner += y - x; });
  });
  CHECK(inner == 80);
}

TEST_CASE("parallel_rows: two callers at once each cover their own range") {
  at::set_num_threads(2);
  std::vector<int> a, b;
  std::thread other([&] {
    for (int i = 0; i < 200; ++i) a = visits(5000, 16);
  });
  for (int i = 0; i < 200; ++i) b = visits(3000, 16);
  other.join();
  CHECK(std::all_of(a.begin(), a.end(), [](int c) { return c == 1; }));
  CHECK(std::all_of(b.begin(), b.end(), [](int c) { return c == 1; }));
}
