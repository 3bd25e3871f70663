#include "core/rate_limiter.h"

#include <algorithm>

namespace depot::core {

RateLimiter::RateLimiter(Clock* clock, std::uint64_t bytes_per_second)
    : clock_(clock),
      rate_(bytes_per_second),
      burst_(std::max<std::uint64_t>(64 << 10, bytes_per_second / 4)),
      allowance_(static_cast<double>(burst_)),
      last_(clock->Monotonic()) {}

void RateLimiter::Refill() {
  MonoTime now = clock_->Monotonic();
  double seconds = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  if (seconds > 0) {
    allowance_ =
        std::min(static_cast<double>(burst_), allowance_ + seconds * static_cast<double>(rate_));
  }
}

void RateLimiter::Throttle(std::uint64_t bytes, const std::function<bool()>& cancelled) {
  if (rate_ == 0) return;
  std::unique_lock lock(mu_);
  Refill();
  allowance_ -= static_cast<double>(bytes);
  while (allowance_ < 0) {
    if (cancelled && cancelled()) return;
    auto owed = std::chrono::duration<double>(-allowance_ / static_cast<double>(rate_));
    lock.unlock();  // others sharing the limiter pay off their own bodies meanwhile
    clock_->SleepFor(std::min<Duration>(
        std::chrono::milliseconds(100),
        std::chrono::duration_cast<Duration>(owed) + std::chrono::microseconds(1)));
    lock.lock();
    Refill();
  }
}

}  // namespace depot::core
