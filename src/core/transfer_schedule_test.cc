#include "core/transfer_schedule.h"

#include <gtest/gtest.h>

namespace depot::core {
namespace {

using Json = nlohmann::json;

// 2026-01-15 10:30 UTC.
TimePoint At1030() { return FromUnixMillis(1768473000000); }

TEST(TransferScheduleTest, NoScheduleIsAlwaysOpenAndUnlimited) {
  ManualClock clock(At1030());
  TransferSchedule s(Env::Default(), &clock, 0, "test");
  EXPECT_TRUE(s.Open());
  EXPECT_EQ(s.limiter()->rate(), 0u);
  s.Set(Json::object());
  EXPECT_TRUE(s.Open());
}

TEST(TransferScheduleTest, WindowsOpenAndCloseOnTheClock) {
  ManualClock clock(At1030());
  TransferSchedule s(Env::Default(), &clock, 0, "test");
  s.Set({{"windows", {{{"start", "11:00"}, {"duration_s", 3600}, {"tz", "UTC"}}}}});
  EXPECT_FALSE(s.Open()) << "10:30 is before 11:00";
  clock.Advance(std::chrono::minutes(31));
  EXPECT_TRUE(s.Open());
  clock.Advance(std::chrono::hours(1));
  EXPECT_FALSE(s.Open()) << "12:01 is after the hour";
  // In a zone: 11:00 in Kolkata (UTC+05:30) is 05:30 UTC, so 10:30 UTC is 16:00 there.
  clock.Set(At1030());
  s.Set({{"windows", {{{"start", "15:30"}, {"duration_s", 3600}, {"tz", "Asia/Kolkata"}}}}});
  EXPECT_TRUE(s.Open());
}

TEST(TransferScheduleTest, AnUnknownZoneKeepsTheLinkClosedAndABadWindowIsSkipped) {
  ManualClock clock(At1030());
  TransferSchedule s(Env::Default(), &clock, 0, "test");
  s.Set({{"windows", {{{"start", "00:00"}, {"duration_s", 86400}, {"tz", "Mars/Olympus"}}}}});
  EXPECT_FALSE(s.Open());
  // Unreadable (no duration): skipped, so no windows remain and the link is open.
  s.Set({{"windows", {{{"start", "11:00"}}}}});
  EXPECT_TRUE(s.Open());
}

TEST(TransferScheduleTest, TheRateIsTheLowerOfTheOperatorsAndTheLocalCap) {
  ManualClock clock(At1030());
  TransferSchedule s(Env::Default(), &clock, 5'000'000, "test");
  EXPECT_EQ(s.limiter()->rate(), 5'000'000u);
  s.Set({{"max_rate", 1'000'000}});
  EXPECT_EQ(s.limiter()->rate(), 1'000'000u);
  s.Set({{"max_rate", 9'000'000}});
  EXPECT_EQ(s.limiter()->rate(), 5'000'000u);
  s.Set({{"max_rate", 0}});
  EXPECT_EQ(s.limiter()->rate(), 5'000'000u);
  EXPECT_EQ(LowerRate(0, 0), 0u);
  EXPECT_EQ(LowerRate(0, 7), 7u);
}

}  // namespace
}  // namespace depot::core
