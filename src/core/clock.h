// The clock seam: wall time for expiry checks and timestamps, monotonic time for
// delays (backoff, timeouts, rates), and sleeping. Tests use ManualClock to move time
// without waiting.
//
// Wall time can jump (an administrator or NTP sets it, a VM resumes); a delay measured
// on it would last days or nothing. So every "how long until" is measured on
// Monotonic(), and wall time is used only for what is shown, signed or persisted.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "core/status.h"

namespace depot::core {

using TimePoint = std::chrono::system_clock::time_point;
using Duration = std::chrono::nanoseconds;
// A reading of the monotonic clock: only differences between two readings mean
// anything.
using MonoTime = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  // The real clock, process-wide; never null.
  static Clock* Real();
  // Wall time (UTC): may jump in either direction.
  virtual TimePoint Now() = 0;
  // Monotonic time: never goes back and does not follow changes of wall time.
  virtual MonoTime Monotonic() = 0;
  virtual void SleepFor(Duration d) = 0;
  // Waits on `cv` (its `lock` held on entry and on return) until `pred()` holds or
  // `timeout` has passed on this clock; returns pred(). Every timed wait of a thread
  // that others wake goes through here, so a test on a ManualClock can make the
  // timeout happen by advancing the clock.
  virtual bool WaitFor(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                       Duration timeout, const std::function<bool()>& pred) = 0;
};

// A clock that only moves when told to. SleepFor and Advance move wall and monotonic
// time together; Set moves wall time alone (a clock being set, or jumping).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start) : now_ns_(start.time_since_epoch().count()) {}
  TimePoint Now() override { return TimePoint(TimePoint::duration(now_ns_.load())); }
  MonoTime Monotonic() override { return MonoTime(MonoTime::duration(mono_ns_.load())); }
  void SleepFor(Duration d) override { Advance(d); }
  // Returns once pred() holds or the clock has been advanced past the deadline
  // (looking every millisecond of real time: Advance does not know the waiters).
  bool WaitFor(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, Duration timeout,
               const std::function<bool()>& pred) override;
  void Advance(Duration d) {
    now_ns_ += std::chrono::duration_cast<TimePoint::duration>(d).count();
    mono_ns_ += std::chrono::duration_cast<MonoTime::duration>(d).count();
  }
  void Set(TimePoint t) { now_ns_ = t.time_since_epoch().count(); }

 private:
  std::atomic<TimePoint::duration::rep> now_ns_;
  // Starts far from zero so that "reading minus a delay" never goes below the epoch.
  std::atomic<MonoTime::duration::rep> mono_ns_{
      MonoTime::duration(std::chrono::hours(24 * 365)).count()};
};

// Whole milliseconds: of a duration, and of a wall time since the epoch (the form
// depot's catalogs store times in).
inline std::int64_t ToMillis(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}
inline std::int64_t UnixMillis(TimePoint t) { return ToMillis(t.time_since_epoch()); }
inline TimePoint FromUnixMillis(std::int64_t ms) {
  return TimePoint(std::chrono::milliseconds(ms));
}

// "2026-11-22T03:04:05Z" (RFC 3339, UTC, whole seconds): the form TUF uses.
std::string FormatUtc(TimePoint t);
// Parses exactly the form FormatUtc writes; InvalidArgument otherwise.
Result<TimePoint> ParseUtc(std::string_view s);
// Parses a duration like "250ms", "90s", "15m", "12h", "30d"; InvalidArgument otherwise.
Result<Duration> ParseDuration(std::string_view s);
// What ParseDuration reads: the shortest of "1d", "3h", "15m", "90s", "250ms" that is
// exact.
std::string FormatDuration(Duration d);

}  // namespace depot::core
