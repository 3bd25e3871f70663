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

// Hands items to a BlockingQueue of batches, `batch` at a time. Why: a consumer that
// has drained its queue sleeps, and one hand-off per item wakes it per item -- a
// context switch per chunk on the same cores that do the work. Flush() sends what is
// pending (at the end, before closing the queue).
// Thread safety: one producer thread per pusher; the queue is shared as usual.
template <typename T>
class BatchPusher {
 public:
  // `queue` is not owned and must outlive the pusher.
  BatchPusher(BlockingQueue<std::vector<T>>* queue, std::size_t batch)
      : queue_(queue), batch_(batch ? batch : 1) {}

  // False (dropping what is pending) once the queue is closed.
  bool Push(T v) {
    pending_.push_back(std::move(v));
    return pending_.size() < batch_ || Flush();
  }
  bool Flush() {
    if (pending_.empty()) return true;
    std::vector<T> out;
    out.swap(pending_);
    return queue_->Push(std::move(out));
  }

 private:
  BlockingQueue<std::vector<T>>* queue_;
  std::size_t batch_;
  std::vector<T> pending_;
};

}  // namespace depot::core
