#include "core/rate_limiter.h"

#include <gtest/gtest.h>

namespace depot::core {
namespace {

constexpr std::uint64_t kRate = 1'000'000;  // bytes per second

double SecondsSince(ManualClock& clock, MonoTime start) {
  return std::chrono::duration<double>(clock.Monotonic() - start).count();
}

// Receives `total` bytes in 64 KiB bodies through `limiter`.
void Receive(RateLimiter& limiter, std::uint64_t total) {
  for (std::uint64_t done = 0; done < total; done += 64 << 10) limiter.Throttle(64 << 10);
}

TEST(RateLimiterTest, HoldsTheRateAfterTheFirstBurst) {
  ManualClock clock(TimePoint(std::chrono::hours(1000)));
  RateLimiter limiter(&clock, kRate);
  EXPECT_EQ(limiter.burst(), kRate / 4);
  MonoTime start = clock.Monotonic();
  Receive(limiter, 8 << 20);
  double expected = static_cast<double>((8 << 20) - limiter.burst()) / kRate;
  EXPECT_NEAR(SecondsSince(clock, start), expected, 0.11);
}

TEST(RateLimiterTest, APauseEarnsNoMoreThanOneBurst) {
  ManualClock clock(TimePoint(std::chrono::hours(1000)));
  RateLimiter limiter(&clock, kRate);
  Receive(limiter, 2 << 20);
  // The process was stopped for 30 s in the middle of the sync.
  clock.Advance(std::chrono::seconds(30));
  MonoTime resumed = clock.Monotonic();
  Receive(limiter, 8 << 20);
  // Only a quarter second's worth passes at once; the rest at the rate (the average
  // over the whole run would have let all 8 MiB through at once).
  double expected = static_cast<double>((8 << 20) - limiter.burst()) / kRate;
  EXPECT_NEAR(SecondsSince(clock, resumed), expected, 0.11);
}

TEST(RateLimiterTest, ABodyLargerThanTheBurstIsPaidOffAfterwards) {
  ManualClock clock(TimePoint(std::chrono::hours(1000)));
  RateLimiter limiter(&clock, kRate);
  MonoTime start = clock.Monotonic();
  limiter.Throttle(3 * kRate);
  EXPECT_NEAR(SecondsSince(clock, start), 3.0 - 0.25, 0.01);
}

TEST(RateLimiterTest, WallClockJumpsDoNotMatter) {
  ManualClock clock(TimePoint(std::chrono::hours(1000)));
  RateLimiter limiter(&clock, kRate);
  Receive(limiter, 1 << 20);
  clock.Set(TimePoint(std::chrono::hours(1000 + 24 * 8)));  // 8 days ahead
  MonoTime before = clock.Monotonic();
  Receive(limiter, 1 << 20);
  EXPECT_NEAR(SecondsSince(clock, before), static_cast<double>(1 << 20) / kRate, 0.11);
  clock.Set(TimePoint(std::chrono::hours(1000)));  // and back
  before = clock.Monotonic();
  Receive(limiter, 1 << 20);
  EXPECT_NEAR(SecondsSince(clock, before), static_cast<double>(1 << 20) / kRate, 0.11);
}

TEST(RateLimiterTest, ZeroIsUnlimitedAndCancelEndsTheWait) {
  ManualClock clock(TimePoint(std::chrono::hours(1000)));
  RateLimiter unlimited(&clock, 0);
  MonoTime start = clock.Monotonic();
  unlimited.Throttle(1ull << 40);
  EXPECT_EQ(clock.Monotonic(), start);
  RateLimiter limited(&clock, kRate);
  int asked = 0;
  limited.Throttle(100 * kRate, [&] { return ++asked > 3; });
  EXPECT_LT(SecondsSince(clock, start), 1.0);
}

TEST(RateLimiterTest, ANewRateAppliesFromTheNextBody) {
  ManualClock clock(TimePoint(std::chrono::hours(1000)));
  RateLimiter limiter(&clock, kRate);
  Receive(limiter, 4 << 20);
  limiter.SetRate(4 * kRate);
  EXPECT_EQ(limiter.rate(), 4 * kRate);
  MonoTime before = clock.Monotonic();
  Receive(limiter, 8 << 20);
  // The old burst carried over is at most a quarter second at the old rate.
  double expected = static_cast<double>(8 << 20) / (4 * kRate);
  EXPECT_NEAR(SecondsSince(clock, before), expected, 0.3);
  limiter.SetRate(0);  // lifted: nothing waits any more
  before = clock.Monotonic();
  limiter.Throttle(1ull << 40);
  EXPECT_EQ(clock.Monotonic(), before);
}

}  // namespace
}  // namespace depot::core
