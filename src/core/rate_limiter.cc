#include "core/rate_limiter.h"

#include <algorithm>

namespace depot::core {

RateLimiter::RateLimiter(Clock* clock, std::uint64_t bytes_per_second)
    : clock_(clock), rate_(bytes_per_second), start_(std::chrono::steady_clock::now()) {}

void RateLimiter::Throttle(std::uint64_t bytes, const std::function<bool()>& cancelled) {
  if (rate_ == 0) return;
  received_ += bytes;
  for (;;) {
    auto allowed = std::chrono::duration<double>(static_cast<double>(received_) / static_cast<double>(rate_));
    auto spent = std::chrono::steady_clock::now() - start_;
    if (spent >= allowed || (cancelled && cancelled())) return;
    clock_->SleepFor(std::min<Duration>(std::chrono::milliseconds(100),
                                        std::chrono::duration_cast<Duration>(allowed - spent)));
  }
}

}  // namespace depot::core
