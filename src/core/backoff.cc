#include "core/backoff.h"

#include <algorithm>
#include <cmath>

#include "core/random.h"

namespace depot::core {

Duration BackoffCap(const BackoffPolicy& policy, std::int64_t failures) {
  const std::int64_t n = std::clamp<std::int64_t>(failures, 1, 63);
  const double cap = std::ldexp(static_cast<double>(policy.base.count()), static_cast<int>(n - 1));
  return cap >= static_cast<double>(policy.max.count()) ? policy.max
                                                        : Duration(static_cast<Duration::rep>(cap));
}

Duration BackoffDelay(const BackoffPolicy& policy, std::int64_t failures, double unit) {
  const Duration cap = BackoffCap(policy, failures);
  const double u = std::clamp(unit, 0.0, 1.0);
  return Duration(static_cast<Duration::rep>(static_cast<double>(cap.count()) * u));
}

Duration BackoffDelay(const BackoffPolicy& policy, std::int64_t failures) {
  // 53 random bits: a double in [0, 1).
  const double unit = static_cast<double>(FastRandom64() >> 11) * 0x1.0p-53;
  return BackoffDelay(policy, failures, unit);
}

Duration Backoff::Failed() {
  ++failures_;
  const Duration d = BackoffDelay(policy_, failures_);
  due_ = clock_->Monotonic() + d;
  return d;
}

void Backoff::Succeeded() {
  failures_ = 0;
  due_ = MonoTime{};
}

Duration Backoff::Remaining() const {
  if (failures_ == 0) return Duration::zero();
  return std::max(Duration::zero(),
                  std::chrono::duration_cast<Duration>(due_ - clock_->Monotonic()));
}

Backoff::State Backoff::Save() const {
  State s;
  s.failures = failures_;
  if (failures_ > 0) {
    s.due_wall_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(DueWall().time_since_epoch()).count();
  }
  return s;
}

void Backoff::Restore(const State& s) {
  failures_ = std::max<std::int64_t>(0, s.failures);
  if (failures_ == 0) {
    due_ = MonoTime{};
    return;
  }
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_->Now().time_since_epoch())
          .count();
  auto left = std::chrono::milliseconds(std::max<std::int64_t>(0, s.due_wall_ms - now_ms));
  // Further away than the longest delay: scheduled by a clock that has gone back.
  due_ = clock_->Monotonic() + std::min<Duration>(left, policy_.max);
}

}  // namespace depot::core
