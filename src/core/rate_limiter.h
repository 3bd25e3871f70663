// A rate cap for a stream of received bodies: after each one, Throttle() pauses the
// receiving thread while the stream is ahead of its allowance. Pausing the thread that
// drives the transfers stops reading from the sockets, so TCP slows the senders. (A
// per-transfer cap such as libcurl's cannot do this for bodies of a few dozen KiB
// that arrive in one burst.)
//
// A token bucket on the clock's monotonic time: the allowance grows at the rate and
// is capped at a short burst (a quarter second's worth, at least 64 KiB), so a pause
// -- the process stopped, the upstream silent -- earns no credit for a burst later.
// A body larger than the allowance is let through and paid off by the next pause.
//
// Thread safety: any thread; several threads throttling one limiter share its rate
// (the DP's sync and its pull-through do).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>

#include "core/clock.h"

namespace depot::core {

class RateLimiter {
 public:
  // `bytes_per_second` 0 means unlimited. `clock` must outlive the limiter.
  RateLimiter(Clock* clock, std::uint64_t bytes_per_second);

  // Counts `bytes` received and sleeps (in steps of at most 100 ms) until the
  // allowance is no longer negative; returns early once `cancelled` (when given)
  // says so.
  void Throttle(std::uint64_t bytes, const std::function<bool()>& cancelled = nullptr);

  // Changes the rate (0: unlimited) for every thread sharing the limiter, from the
  // next body on; a thread paused now wakes within 100 ms and pays at the new rate.
  void SetRate(std::uint64_t bytes_per_second);
  std::uint64_t rate() const { return rate_.load(); }

  // The most the allowance can hold: what may pass at once after a pause.
  std::uint64_t burst() {
    std::lock_guard lock(mu_);
    return burst_;
  }

 private:
  void Refill();  // caller holds mu_
  static std::uint64_t BurstFor(std::uint64_t rate);

  Clock* clock_;
  std::atomic<std::uint64_t> rate_;  // read without mu_ on the unlimited fast path
  std::mutex mu_;
  std::uint64_t burst_;  // under mu_
  double allowance_;     // bytes; negative while paying off a large body
  MonoTime last_;
};

}  // namespace depot::core
