// The clock seam: wall time for expiry checks and timestamps, and sleeping for
// backoff. Tests use ManualClock to move time without waiting.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace depot::core {

using TimePoint = std::chrono::system_clock::time_point;
using Duration = std::chrono::nanoseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  // The real clock, process-wide; never null.
  static Clock* Real();
  virtual TimePoint Now() = 0;
  virtual void SleepFor(Duration d) = 0;
};

// A clock that only moves when told to. SleepFor advances it instead of waiting.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start) : now_ns_(start.time_since_epoch().count()) {}
  TimePoint Now() override { return TimePoint(TimePoint::duration(now_ns_.load())); }
  void SleepFor(Duration d) override { Advance(d); }
  void Advance(Duration d) {
    now_ns_ += std::chrono::duration_cast<TimePoint::duration>(d).count();
  }
  void Set(TimePoint t) { now_ns_ = t.time_since_epoch().count(); }

 private:
  std::atomic<TimePoint::duration::rep> now_ns_;
};

// "2026-11-22T03:04:05Z" (RFC 3339, UTC, whole seconds): the form TUF uses.
std::string FormatUtc(TimePoint t);
// Parses exactly the form FormatUtc writes; InvalidArgument otherwise.
Result<TimePoint> ParseUtc(std::string_view s);
// Parses a duration like "250ms", "90s", "15m", "12h", "30d"; InvalidArgument otherwise.
Result<Duration> ParseDuration(std::string_view s);

}  // namespace depot::core
