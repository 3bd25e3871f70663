#include "core/rate_limiter.h"

#include <algorithm>

namespace depot::core {

std::uint64_t RateLimiter::BurstFor(std::uint64_t rate) {
  return std::max<std::uint64_t>(64 << 10, rate / 4);
}

RateLimiter::RateLimiter(Clock* clock, std::uint64_t bytes_per_second)
    : clock_(clock),
      rate_(bytes_per_second),
      burst_(BurstFor(bytes_per_second)),
      allowance_(static_cast<double>(burst_)),
      last_(clock->Monotonic()) {}

void RateLimiter::SetRate(std::uint64_t bytes_per_second) {
  std::lock_guard lock(mu_);
  if (bytes_per_second == rate_.load()) return;
  Refill();
  rate_ = bytes_per_second;
  burst_ = BurstFor(bytes_per_second);
  // A debt at the old rate is kept (paid at the new one); credit is capped anew.
  allowance_ = std::min(allowance_, static_cast<double>(burst_));
}

void RateLimiter::Refill() {
  MonoTime now = clock_->Monotonic();
  double seconds = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  if (seconds > 0) {
    allowance_ = std::min(static_cast<double>(burst_),
                          allowance_ + seconds * static_cast<double>(rate_.load()));
  }
}

void RateLimiter::Throttle(std::uint64_t bytes, const std::function<bool()>& cancelled) {
  if (rate_.load() == 0) return;
  std::unique_lock lock(mu_);
  Refill();
  allowance_ -= static_cast<double>(bytes);
  while (allowance_ < 0) {
    if (cancelled && cancelled()) return;
    const std::uint64_t rate = rate_.load();
    if (rate == 0) return;  // the limit was lifted while paying off
    auto owed = std::chrono::duration<double>(-allowance_ / static_cast<double>(rate));
    lock.unlock();  // others sharing the limiter pay off their own bodies meanwhile
    clock_->SleepFor(std::min<Duration>(
        std::chrono::milliseconds(100),
        std::chrono::duration_cast<Duration>(owed) + std::chrono::microseconds(1)));
    lock.lock();
    Refill();
  }
}

}  // namespace depot::core
