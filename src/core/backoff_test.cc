#include "core/backoff.h"

#include <gtest/gtest.h>

namespace depot::core {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

const BackoffPolicy kPolicy{seconds(1), seconds(60)};

TEST(BackoffTest, CapDoublesUpToTheMaximum) {
  EXPECT_EQ(BackoffCap(kPolicy, 1), seconds(1));
  EXPECT_EQ(BackoffCap(kPolicy, 2), seconds(2));
  EXPECT_EQ(BackoffCap(kPolicy, 6), seconds(32));
  EXPECT_EQ(BackoffCap(kPolicy, 7), seconds(60));
  EXPECT_EQ(BackoffCap(kPolicy, 1000), seconds(60)) << "no overflow however long it fails";
  EXPECT_EQ(BackoffCap(kPolicy, 0), seconds(1));
}

TEST(BackoffTest, FullJitterSpansZeroToTheCap) {
  EXPECT_EQ(BackoffDelay(kPolicy, 3, 0.0), seconds(0));
  EXPECT_EQ(BackoffDelay(kPolicy, 3, 0.5), seconds(2));
  EXPECT_EQ(BackoffDelay(kPolicy, 3, 0.999999), BackoffDelay(kPolicy, 3, 0.999999));
  EXPECT_LT(BackoffDelay(kPolicy, 3, 0.999999), seconds(4));
  Duration lo = hours(1), hi = Duration::zero();
  for (int i = 0; i < 2000; ++i) {
    Duration d = BackoffDelay(kPolicy, 4);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
    ASSERT_LE(d, seconds(8));
  }
  // Spread over the range, not clustered at one end.
  EXPECT_LT(lo, seconds(1));
  EXPECT_GT(hi, seconds(7));
}

TEST(BackoffTest, DueOnTheMonotonicClockWhateverTheWallClockDoes) {
  ManualClock clock(TimePoint(hours(1000)));
  Backoff b(&clock, kPolicy);
  EXPECT_TRUE(b.Due());
  Duration d = b.Failed();
  EXPECT_EQ(b.failures(), 1);
  EXPECT_LE(d, seconds(1));
  clock.Set(TimePoint(hours(1000 + 24 * 8)));  // the wall clock jumps ahead...
  clock.Set(TimePoint(hours(1000 - 24 * 8)));  // ...and back
  clock.Advance(seconds(1));
  EXPECT_TRUE(b.Due());
  EXPECT_EQ(b.Remaining(), Duration::zero());
  for (int i = 0; i < 10; ++i) b.Failed();
  EXPECT_LE(b.Remaining(), seconds(60));
  b.Succeeded();
  EXPECT_TRUE(b.Due());
  EXPECT_EQ(b.failures(), 0);
}

TEST(BackoffTest, SavedStateIsRestoredAndClampedToTheMaximum) {
  ManualClock clock(TimePoint(hours(1000)));
  Backoff b(&clock, kPolicy);
  for (int i = 0; i < 5; ++i) b.Failed();
  Backoff::State s = b.Save();
  EXPECT_EQ(s.failures, 5);
  Backoff again(&clock, kPolicy);
  again.Restore(s);
  EXPECT_EQ(again.failures(), 5);
  EXPECT_LE(again.Remaining(), b.Remaining() + milliseconds(1));
  // Persisted by a clock 8 days ahead, restored after it came back: due within max.
  s.due_wall_ms += 8 * 24 * 3600 * 1000LL;
  Backoff late(&clock, kPolicy);
  late.Restore(s);
  EXPECT_EQ(late.Remaining(), seconds(60));
  clock.Advance(seconds(60));
  EXPECT_TRUE(late.Due());
  // A due time already past: due at once.
  s.due_wall_ms = 1;
  late.Restore(s);
  EXPECT_TRUE(late.Due());
  late.Restore({});
  EXPECT_EQ(late.failures(), 0);
}

}  // namespace
}  // namespace depot::core
