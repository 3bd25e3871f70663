// Small concurrency helpers: a bounded blocking queue and a parallel loop.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace depot::core {

// Number of worker threads to use for CPU-bound work: the cores available to us.
unsigned DefaultConcurrency();

// Runs fn(worker_index) on `workers` threads (the caller's thread is one of them)
// and returns when all have returned. fn must not throw.
void RunParallel(unsigned workers, const std::function<void(unsigned)>& fn);

// A bounded multi-producer multi-consumer queue. Push blocks while full; Pop blocks
// while empty and returns nullopt once the queue is closed and drained.
// Thread safety: all methods may be called concurrently.
template <typename T>
class BlockingQueue {
 public:
  explicit BlockingQueue(std::size_t capacity) : capacity_(capacity ? capacity : 1) {}

  // Returns false (dropping `v`) if the queue was closed.
  bool Push(T v) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return closed_ || q_.size() < capacity_; });
    if (closed_) return false;
    q_.push_back(std::move(v));
    not_empty_.notify_one();
    return true;
  }
  std::optional<T> Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [&] { return closed_ || !q_.empty(); });
    if (q_.empty()) return std::nullopt;
    T v = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return v;
  }
  // No more pushes; consumers drain what is queued, then get nullopt.
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<T> q_;
  std::size_t capacity_;
  bool closed_ = false;
};

}  // namespace depot::core
