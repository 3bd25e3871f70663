// An average-rate cap for a stream of received bodies: after each one, Throttle()
// pauses the receiving thread until the bytes so far fit rate x elapsed. Pausing the
// thread that drives the transfers stops reading from the sockets, so TCP slows the
// senders. (A per-transfer cap such as libcurl's cannot do this for bodies of a few
// dozen KiB that arrive in one burst.)
//
// Thread safety: one thread at a time.
#pragma once

#include <cstdint>
#include <functional>

#include "core/clock.h"

namespace depot::core {

class RateLimiter {
 public:
  // `bytes_per_second` 0 means unlimited. `clock` must outlive the limiter.
  RateLimiter(Clock* clock, std::uint64_t bytes_per_second);

  // Counts `bytes` received and sleeps (in steps of at most 100 ms) while ahead of the
  // allowed average; returns early once `cancelled` (when given) says so.
  void Throttle(std::uint64_t bytes, const std::function<bool()>& cancelled = nullptr);

 private:
  Clock* clock_;
  std::uint64_t rate_;
  std::uint64_t received_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace depot::core
