// Daily windows in the operator's time zones ("22:00 for 4 h, Europe/Berlin"): when an
// agent may install a deployment, when a site's link may move bulk content.
//
// Time zones come from the system's compiled tz database (TZif files under
// /usr/share/zoneinfo, or $TZDIR): the 64-bit transition table, and for instants
// past its end the POSIX rule in the file's footer ("CET-1CEST,M3.5.0,M10.5.0/3").
// Only the UTC offset at an instant is needed, so nothing else of the file is read.
//
// Thread safety: TimeZone is immutable once loaded; ZoneCache is internally locked.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
#include "core/status.h"

namespace depot::core {

class TimeZone {
 public:
  // Parses TZif bytes (versions 1-4). InvalidArgument when they are not TZif.
  static core::Result<TimeZone> Parse(std::string_view tzif);
  static TimeZone Utc();

  // Seconds east of UTC at the instant `utc_s` (seconds since the epoch).
  std::int64_t OffsetAt(std::int64_t utc_s) const;

 private:
  struct Rule {  // the footer's POSIX TZ rule
    bool valid = false;
    std::int64_t std_off = 0, dst_off = 0;  // seconds east of UTC
    bool has_dst = false;
    int start_month = 0, start_week = 0, start_day = 0;
    int end_month = 0, end_week = 0, end_day = 0;
    std::int64_t start_time = 7200, end_time = 7200;  // local seconds after midnight
  };
  static bool ParseRule(std::string_view text, Rule* out);
  static std::int64_t RuleOffsetAt(const Rule& r, std::int64_t utc_s);

  std::vector<std::int64_t> transitions_;
  std::vector<std::uint8_t> transition_types_;
  std::vector<std::int64_t> type_offsets_;
  std::int64_t initial_offset_ = 0;
  Rule footer_;
};

// Loads and keeps zones by name. NotFound for an unknown zone (the message names it),
// InvalidArgument for a name that is not a zone name ("../x", absolute paths).
class ZoneCache {
 public:
  // `env` must outlive the cache; `dir` "" means $TZDIR or /usr/share/zoneinfo.
  explicit ZoneCache(core::Env* env, std::string dir = "");
  core::Result<std::shared_ptr<const TimeZone>> Get(const std::string& name);

 private:
  core::Env* env_;
  std::string dir_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const TimeZone>> zones_;
};

// A daily window: from `start_minute` after local midnight, for `duration_s`.
struct Window {
  int start_minute = 0;
  std::int64_t duration_s = 0;
  std::string tz = "UTC";
};

// Parses "HH:MM" into minutes after midnight. InvalidArgument otherwise.
core::Result<int> ParseClock(std::string_view hhmm);

// Whether `utc_s` falls inside any of the windows (true when there are none).
// Errors: a window's time zone cannot be loaded.
core::Result<bool> InsideWindows(ZoneCache* zones, const std::vector<Window>& windows,
                                 std::int64_t utc_s);

// Days since 1970-01-01 of a proleptic Gregorian date (month 1-12).
std::int64_t DaysFromCivil(std::int64_t year, int month, int day);

}  // namespace depot::core
