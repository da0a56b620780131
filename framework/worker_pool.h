// A fixed set of threads that run submitted jobs in submission order. Each submit() returns a
// std::future carrying the job's result, or its exception, to the consumer. The pool does not bound the
// work queued: a consumer that prefetches keeps its own depth of futures (MetaLoader: two batches per
// worker, as DataLoader's prefetch_factor).
//
// Shutdown (destructor): running jobs finish, jobs not yet started are dropped (their futures throw
// std::future_error broken_promise), then the threads are joined. Declare a pool after the members its
// jobs use, so that it is stopped before they go.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace cb {

class WorkerPool {
 public:
  // `threads` threads, each running `on_start` once before its first job (per-thread runtime settings).
  explicit WorkerPool(size_t threads, std::function<void()> on_start = {});
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  template <typename F>
  std::future<std::invoke_result_t<F&>> submit(F job) {
    auto task = std::make_shared<std::packaged_task<std::invoke_result_t<F&>()>>(std::move(job));
    auto result = task->get_future();
    push([task] { (*task)(); });
    return result;
  }

  // Drops the jobs not yet started, as at shutdown; running jobs go on.
  void cancel_queued();

 private:
  void push(std::function<void()> job);
  void work(const std::function<void()>& on_start);

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace cb
