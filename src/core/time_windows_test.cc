#include "core/time_windows.h"

#include <gtest/gtest.h>

namespace depot::core {
namespace {

std::int64_t Utc(int y, int mo, int d, int h, int mi) {
  return DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60;
}

TEST(ScheduleTest, DaysFromCivilMatchesKnownDates) {
  EXPECT_EQ(DaysFromCivil(1970, 1, 1), 0);
  EXPECT_EQ(DaysFromCivil(2000, 3, 1), 11017);
  EXPECT_EQ(DaysFromCivil(1969, 12, 31), -1);
  EXPECT_EQ(Utc(2026, 11, 23, 0, 0), 1795392000);
}

TEST(ScheduleTest, BerlinOffsetsFromTheTableAndFromTheFooterRule) {
  core::Env* env = core::Env::Default();
  ZoneCache zones(env);
  auto berlin = zones.Get("Europe/Berlin");
  ASSERT_TRUE(berlin.ok()) << berlin.status().ToString();
  EXPECT_EQ((*berlin)->OffsetAt(Utc(2026, 1, 15, 12, 0)), 3600);
  EXPECT_EQ((*berlin)->OffsetAt(Utc(2026, 7, 15, 12, 0)), 7200);
  // 2026's changes: 29 March 01:00 UTC and 25 October 01:00 UTC.
  EXPECT_EQ((*berlin)->OffsetAt(Utc(2026, 3, 29, 0, 59)), 3600);
  EXPECT_EQ((*berlin)->OffsetAt(Utc(2026, 3, 29, 1, 0)), 7200);
  EXPECT_EQ((*berlin)->OffsetAt(Utc(2026, 10, 25, 0, 59)), 7200);
  EXPECT_EQ((*berlin)->OffsetAt(Utc(2026, 10, 25, 1, 0)), 3600);
  // Far past the table: the POSIX rule (last Sunday of March 2050 is the 27th).
  EXPECT_EQ((*berlin)->OffsetAt(Utc(2050, 3, 27, 0, 59)), 3600);
  EXPECT_EQ((*berlin)->OffsetAt(Utc(2050, 3, 27, 1, 0)), 7200);
  EXPECT_EQ((*berlin)->OffsetAt(Utc(2050, 12, 1, 0, 0)), 3600);
}

TEST(ScheduleTest, SouthernHemisphereAndNoDst) {
  ZoneCache zones(core::Env::Default());
  auto sydney = zones.Get("Australia/Sydney");
  ASSERT_TRUE(sydney.ok());
  EXPECT_EQ((*sydney)->OffsetAt(Utc(2060, 1, 10, 0, 0)), 11 * 3600);
  EXPECT_EQ((*sydney)->OffsetAt(Utc(2060, 7, 10, 0, 0)), 10 * 3600);
  auto tokyo = zones.Get("Asia/Tokyo");
  ASSERT_TRUE(tokyo.ok());
  EXPECT_EQ((*tokyo)->OffsetAt(Utc(2060, 7, 10, 0, 0)), 9 * 3600);
  auto ny = zones.Get("America/New_York");
  ASSERT_TRUE(ny.ok());
  EXPECT_EQ((*ny)->OffsetAt(Utc(2026, 1, 10, 0, 0)), -5 * 3600);
  EXPECT_EQ((*ny)->OffsetAt(Utc(2055, 7, 10, 0, 0)), -4 * 3600);
}

TEST(ScheduleTest, UnknownAndHostileZoneNames) {
  ZoneCache zones(core::Env::Default());
  EXPECT_TRUE(zones.Get("Mars/Olympus").status().IsNotFound());
  EXPECT_TRUE(zones.Get("../../etc/passwd").status().IsInvalidArgument());
  EXPECT_TRUE(zones.Get("/etc/passwd").status().IsInvalidArgument());
  EXPECT_TRUE(TimeZone::Parse("not a zone").status().IsInvalidArgument());
  EXPECT_TRUE(TimeZone::Parse("TZif2").status().IsInvalidArgument());
}

TEST(ScheduleTest, WindowsInLocalTimeIncludingAcrossMidnight) {
  ZoneCache zones(core::Env::Default());
  auto start = ParseClock("22:00");
  ASSERT_TRUE(start.ok());
  std::vector<Window> w = {{*start, 4 * 3600, "Europe/Berlin"}};
  // 22:00-02:00 Berlin in winter is 21:00-01:00 UTC.
  EXPECT_FALSE(*InsideWindows(&zones, w, Utc(2026, 1, 15, 20, 59)));
  EXPECT_TRUE(*InsideWindows(&zones, w, Utc(2026, 1, 15, 21, 0)));
  EXPECT_TRUE(*InsideWindows(&zones, w, Utc(2026, 1, 16, 0, 30)));
  EXPECT_FALSE(*InsideWindows(&zones, w, Utc(2026, 1, 16, 1, 0)));
  // In summer the same window is an hour earlier in UTC.
  EXPECT_TRUE(*InsideWindows(&zones, w, Utc(2026, 7, 15, 20, 0)));
  EXPECT_FALSE(*InsideWindows(&zones, w, Utc(2026, 7, 16, 0, 0)));
  EXPECT_TRUE(*InsideWindows(&zones, {}, Utc(2026, 7, 16, 0, 0)));
  std::vector<Window> bad = {{0, 3600, "Nowhere/Land"}};
  EXPECT_FALSE(InsideWindows(&zones, bad, 0).ok());
  EXPECT_FALSE(ParseClock("24:00").ok());
  EXPECT_FALSE(ParseClock("7:00").ok());
  EXPECT_EQ(*ParseClock("07:30"), 450);
}

}  // namespace
}  // namespace depot::core
