// Internal to the catalog component: the connection pool of both backends, and their
// one retry of busy transactions (RetryWhileBusy). At most
// `max` connections are open; a transaction takes one for its duration (waiting when
// all are taken) and gives it back, or drops it when it is no longer usable.
//
// Thread safety: Acquire and Release from any thread.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/status.h"

namespace depot::catalog {

template <typename Conn>
class ConnPool {
 public:
  using ConnectFn = std::function<core::Result<std::unique_ptr<Conn>>()>;

  ConnPool(unsigned max, ConnectFn connect) : max_(max), connect_(std::move(connect)) {}

  // An idle connection, else a new one while fewer than `max` are open, else waits.
  // The connect function's error when a new one cannot be opened.
  core::Result<std::unique_ptr<Conn>> Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
      if (open_ < max_) {
        ++open_;
        lock.unlock();
        auto c = connect_();
        if (!c.ok()) {
          std::lock_guard<std::mutex> relock(mu_);
          --open_;
          cv_.notify_one();
        }
        return c;
      }
      cv_.wait(lock);
    }
  }

  // Gives `c` back; an unhealthy one is closed and its slot freed.
  void Release(std::unique_ptr<Conn> c, bool healthy) {
    std::lock_guard<std::mutex> lock(mu_);
    if (healthy) {
      idle_.push_back(std::move(c));
    } else {
      --open_;
    }
    cv_.notify_one();
  }

 private:
  const unsigned max_;
  const ConnectFn connect_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;  // under mu_
  unsigned open_ = 0;                        // under mu_
};

// Runs `attempt` again while it says so (*again), pausing between runs on `clock`
// (core::Backoff, 2 ms doubling to 200 ms), until `busy_timeout_ms` have passed;
// returns the last run's status.
inline core::Status RetryWhileBusy(core::Clock* clock, std::int64_t busy_timeout_ms,
                                   const std::function<core::Status(bool* again)>& attempt) {
  const core::MonoTime deadline = clock->Monotonic() + std::chrono::milliseconds(busy_timeout_ms);
  core::Backoff backoff(clock, {std::chrono::milliseconds(2), std::chrono::milliseconds(200)});
  for (;;) {
    bool again = false;
    core::Status s = attempt(&again);
    if (!again || clock->Monotonic() >= deadline) return s;
    clock->SleepFor(backoff.Failed());
  }
}

}  // namespace depot::catalog
