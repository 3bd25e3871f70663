#include "core/clock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace depot::core {
namespace {

TEST(ClockTest, UtcRoundTrip) {
  auto t = ParseUtc("2026-11-22T03:04:05Z");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(FormatUtc(*t), "2026-11-22T03:04:05Z");
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*t), 1795316645);
}

TEST(ClockTest, UtcRejectsOtherForms) {
  for (const char* s :
       {"2026-11-22T03:04:05", "2026-11-22 03:04:05Z", "2026-13-01T00:00:00Z",
        "2026-02-31T00:00:00Z", "2026-11-22T03:04:05.5Z", "", "2026-11-22T03:04:05+00:00"}) {
    EXPECT_TRUE(ParseUtc(s).status().IsInvalidArgument()) << s;
  }
}

// Found by fuzz_tuf_metadata: an `expires` far in the future overflowed the
// nanosecond count (undefined behaviour) instead of being refused.
TEST(ClockTest, UtcRefusesYearsATimePointCannotHold) {
  for (const char* s : {"3360-01-03T14:45:43Z", "9999-12-31T23:59:59Z", "2262-04-12T00:00:00Z",
                        "0000-01-01T00:00:00Z", "1677-01-01T00:00:00Z"}) {
    auto t = ParseUtc(s);
    EXPECT_TRUE(t.status().IsInvalidArgument()) << s;
    EXPECT_NE(t.status().message().find("1678-2261"), std::string::npos) << t.status().ToString();
  }
  EXPECT_EQ(FormatUtc(*ParseUtc("2261-12-31T23:59:59Z")), "2261-12-31T23:59:59Z");
  EXPECT_EQ(FormatUtc(*ParseUtc("1678-01-01T00:00:00Z")), "1678-01-01T00:00:00Z");
}

TEST(ClockTest, ManualClockAdvancesOnSleep) {
  ManualClock clock(*ParseUtc("2026-01-01T00:00:00Z"));
  clock.SleepFor(std::chrono::hours(25));
  EXPECT_EQ(FormatUtc(clock.Now()), "2026-01-02T01:00:00Z");
}

TEST(ClockTest, ParseDuration) {
  EXPECT_EQ(*ParseDuration("90s"), std::chrono::seconds(90));
  EXPECT_EQ(*ParseDuration("30d"), std::chrono::hours(720));
  EXPECT_EQ(*ParseDuration("250ms"), std::chrono::milliseconds(250));
  EXPECT_FALSE(ParseDuration("ms").ok());
  EXPECT_TRUE(ParseDuration("5").status().IsInvalidArgument());
  EXPECT_TRUE(ParseDuration("5y").status().IsInvalidArgument());
  EXPECT_TRUE(ParseDuration("-5s").status().IsInvalidArgument());
}

}  // namespace
}  // namespace depot::core

namespace depot::core {
namespace {

TEST(ClockTest, ManualClockWaitEndsWhenWokenOrWhenAdvancedPastTheDeadline) {
  ManualClock clock(TimePoint(std::chrono::hours(1000)));
  std::mutex mu;
  std::condition_variable cv;
  bool flag = false;
  // Woken: the predicate holds.
  std::thread waker([&] {
    std::lock_guard<std::mutex> l(mu);
    flag = true;
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> l(mu);
    EXPECT_TRUE(clock.WaitFor(l, cv, std::chrono::hours(1), [&] { return flag; }));
  }
  waker.join();
  // Timed out: only once the clock has moved past the deadline. A helper advances it
  // a second at a time until the wait returns.
  flag = false;
  std::atomic<bool> returned{false};
  std::thread advancer([&] {
    while (!returned) {
      clock.Advance(std::chrono::seconds(1));
      std::this_thread::yield();
    }
  });
  {
    std::unique_lock<std::mutex> l(mu);
    MonoTime start = clock.Monotonic();
    clock.Set(TimePoint(std::chrono::hours(5000)));  // the wall clock jumping does not end it
    EXPECT_FALSE(clock.WaitFor(l, cv, std::chrono::seconds(30), [&] { return flag; }));
    EXPECT_GE(clock.Monotonic() - start, std::chrono::seconds(30));
  }
  returned = true;
  advancer.join();
}

}  // namespace
}  // namespace depot::core
