#include "framework/worker_pool.h"

namespace cb {

WorkerPool::WorkerPool(size_t threads, std::function<void()> on_start) {
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this, on_start] { work(on_start); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::push(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(job));
  }
  ready_.notify_one();
}

void WorkerPool::cancel_queued() {
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard lock(mutex_);
    dropped.swap(queue_);
  }
  // Destroyed outside the lock: dropping a job breaks its promise, which wakes its consumer.
}

void WorkerPool::work(const std::function<void()>& on_start) {
  if (on_start) on_start();
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job();
  }
}

}  // namespace cb
