#include "core/clock.h"

#include <cstdio>
#include <ctime>
#include <thread>

namespace depot::core {
namespace {
class RealClock final : public Clock {
 public:
  TimePoint Now() override { return std::chrono::system_clock::now(); }
  MonoTime Monotonic() override { return std::chrono::steady_clock::now(); }
  void SleepFor(Duration d) override { std::this_thread::sleep_for(d); }
  bool WaitFor(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, Duration timeout,
               const std::function<bool()>& pred) override {
    return cv.wait_for(lock, timeout, pred);
  }
};

bool Digits(std::string_view s, std::size_t pos, std::size_t n, int* out) {
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}
}  // namespace

bool ManualClock::WaitFor(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                          Duration timeout, const std::function<bool()>& pred) {
  const MonoTime deadline = Monotonic() + timeout;
  while (!pred()) {
    if (Monotonic() >= deadline) return false;
    cv.wait_for(lock, std::chrono::milliseconds(1));
  }
  return true;
}

Clock* Clock::Real() {
  static RealClock clock;
  return &clock;
}

std::string FormatUtc(TimePoint t) {
  std::time_t secs =
      std::chrono::system_clock::to_time_t(std::chrono::time_point_cast<std::chrono::seconds>(t));
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

Result<TimePoint> ParseUtc(std::string_view s) {
  auto bad = [&] {
    return Status::InvalidArgument("not a UTC time of the form YYYY-MM-DDTHH:MM:SSZ: '" +
                                   std::string(s.substr(0, 40)) + "'");
  };
  if (s.size() != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != 'Z') {
    return bad();
  }
  int y, mo, d, h, mi, se;
  if (!Digits(s, 0, 4, &y) || !Digits(s, 5, 2, &mo) || !Digits(s, 8, 2, &d) ||
      !Digits(s, 11, 2, &h) || !Digits(s, 14, 2, &mi) || !Digits(s, 17, 2, &se)) {
    return bad();
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return bad();
  // A TimePoint counts nanoseconds in 64 bits: 1677-09-21 to 2262-04-11. (Found by
  // fuzz_tuf_metadata: an `expires` in 3360 overflowed the conversion.)
  if (y < 1678 || y > 2261) {
    return Status::InvalidArgument("time '" + std::string(s) +
                                   "' is outside the years 1678-2261 that depot can represent");
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  std::time_t t = timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) return bad();
  // timegm normalises 31 Feb into March; a round trip catches it.
  if (FormatUtc(std::chrono::system_clock::from_time_t(t)) != s && se != 60) return bad();
  return std::chrono::system_clock::from_time_t(t);
}

std::string FormatDuration(Duration d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  auto s = ms / 1000;
  if (s != 0 && s % 86400 == 0) return std::to_string(s / 86400) + "d";
  if (s != 0 && s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s != 0 && s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

Result<Duration> ParseDuration(std::string_view s) {
  auto bad = [&] {
    return Status::InvalidArgument("not a duration (want a number and one of ms, s, m, h, d): '" +
                                   std::string(s.substr(0, 40)) + "'");
  };
  if (s.size() > 2 && s.substr(s.size() - 2) == "ms") {
    auto whole = ParseDuration(std::string(s.substr(0, s.size() - 2)) + "s");
    if (!whole.ok()) return bad();
    return std::chrono::duration_cast<std::chrono::milliseconds>(*whole) / 1000;
  }
  if (s.size() < 2) return bad();
  std::int64_t n = 0;
  for (std::size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9' || n > 100000000) return bad();
    n = n * 10 + (s[i] - '0');
  }
  switch (s.back()) {
    case 's':
      return std::chrono::seconds(n);
    case 'm':
      return std::chrono::minutes(n);
    case 'h':
      return std::chrono::hours(n);
    case 'd':
      return std::chrono::hours(24 * n);
    default:
      return bad();
  }
}

}  // namespace depot::core
