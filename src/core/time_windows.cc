#include "core/time_windows.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "core/path.h"

namespace depot::core {

using core::Status;

namespace {

constexpr std::int64_t kDay = 86400;

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

struct Reader {
  std::string_view data;
  std::size_t pos = 0;
  bool ok = true;
  std::uint64_t Be(std::size_t n) {
    if (pos + n > data.size()) {
      ok = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(data[pos + i]);
    pos += n;
    return v;
  }
  void Skip(std::size_t n) {
    if (pos + n > data.size()) ok = false;
    pos = std::min(data.size(), pos + n);
  }
};

struct Counts {
  std::uint64_t isut, isstd, leap, time, type, chars;
};

bool ReadHeader(Reader* r, char* version, Counts* c) {
  if (r->data.substr(r->pos, 4) != "TZif") return false;
  r->Skip(4);
  *version = r->pos < r->data.size() ? r->data[r->pos] : 0;
  r->Skip(16);
  c->isut = r->Be(4);
  c->isstd = r->Be(4);
  c->leap = r->Be(4);
  c->time = r->Be(4);
  c->type = r->Be(4);
  c->chars = r->Be(4);
  // Real zones have a few hundred transitions; these bounds only stop nonsense.
  return r->ok && c->time < 100000 && c->type >= 1 && c->type <= 256 && c->chars < 100000 &&
         c->leap < 100000;
}

// [+-]hh[:mm[:ss]] -> seconds; returns false on a malformed time.
bool ParseHms(std::string_view s, std::size_t* pos, std::int64_t* out) {
  int sign = 1;
  if (*pos < s.size() && (s[*pos] == '+' || s[*pos] == '-')) {
    sign = s[*pos] == '-' ? -1 : 1;
    ++*pos;
  }
  std::int64_t parts[3] = {0, 0, 0};
  for (int i = 0; i < 3; ++i) {
    if (i > 0) {
      if (*pos >= s.size() || s[*pos] != ':') break;
      ++*pos;
    }
    std::size_t start = *pos;
    while (*pos < s.size() && std::isdigit(static_cast<unsigned char>(s[*pos]))) ++*pos;
    if (*pos == start || *pos - start > 3) return false;
    parts[i] = std::atoi(std::string(s.substr(start, *pos - start)).c_str());
  }
  *out = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
  return true;
}

bool ParseName(std::string_view s, std::size_t* pos) {
  if (*pos < s.size() && s[*pos] == '<') {
    auto end = s.find('>', *pos);
    if (end == std::string_view::npos) return false;
    *pos = end + 1;
    return true;
  }
  std::size_t start = *pos;
  while (*pos < s.size() && std::isalpha(static_cast<unsigned char>(s[*pos]))) ++*pos;
  return *pos - start >= 3;
}

// "Mm.w.d[/time]"; other rule forms (Jn, n) are rare and not supported.
bool ParseDate(std::string_view s, std::size_t* pos, int* month, int* week, int* day,
               std::int64_t* time) {
  if (*pos >= s.size() || s[*pos] != 'M') return false;
  ++*pos;
  int v[3];
  for (int i = 0; i < 3; ++i) {
    if (i > 0) {
      if (*pos >= s.size() || s[*pos] != '.') return false;
      ++*pos;
    }
    std::size_t start = *pos;
    while (*pos < s.size() && std::isdigit(static_cast<unsigned char>(s[*pos]))) ++*pos;
    if (*pos == start) return false;
    v[i] = std::atoi(std::string(s.substr(start, *pos - start)).c_str());
  }
  if (v[0] < 1 || v[0] > 12 || v[1] < 1 || v[1] > 5 || v[2] < 0 || v[2] > 6) return false;
  *month = v[0];
  *week = v[1];
  *day = v[2];
  *time = 7200;
  if (*pos < s.size() && s[*pos] == '/') {
    ++*pos;
    return ParseHms(s, pos, time);
  }
  return true;
}

int DaysInMonth(std::int64_t y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// Local midnight (as days since the epoch) of "day d of week w of month m" in year y.
std::int64_t RuleDay(std::int64_t y, int m, int w, int d) {
  std::int64_t first = DaysFromCivil(y, m, 1);
  int first_wday = static_cast<int>(((first % 7) + 7 + 4) % 7);  // 1970-01-01 was a Thursday (4)
  int day = 1 + (d - first_wday + 7) % 7 + (w - 1) * 7;
  while (day > DaysInMonth(y, m)) day -= 7;
  return first + day - 1;
}

void CivilFromDays(std::int64_t z, std::int64_t* y, int* m) {
  z += 719468;
  std::int64_t era = FloorDiv(z, 146097);
  std::int64_t doe = z - era * 146097;
  std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  std::int64_t mp = (5 * doy + 2) / 153;
  *m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2 ? 1 : 0);
}

}  // namespace

std::int64_t DaysFromCivil(std::int64_t y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  std::int64_t era = FloorDiv(y, 400);
  std::int64_t yoe = y - era * 400;
  std::int64_t mp = m > 2 ? m - 3 : m + 9;
  std::int64_t doy = (153 * mp + 2) / 5 + d - 1;
  std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool TimeZone::ParseRule(std::string_view s, Rule* out) {
  Rule r;
  std::size_t pos = 0;
  std::int64_t off = 0;
  if (!ParseName(s, &pos) || !ParseHms(s, &pos, &off)) return false;
  r.std_off = -off;  // POSIX offsets are west of UTC
  r.dst_off = r.std_off + 3600;
  if (pos < s.size()) {
    if (!ParseName(s, &pos)) return false;
    r.has_dst = true;
    if (pos < s.size() && s[pos] != ',') {
      if (!ParseHms(s, &pos, &off)) return false;
      r.dst_off = -off;
    }
    if (pos >= s.size() || s[pos] != ',') return false;
    ++pos;
    if (!ParseDate(s, &pos, &r.start_month, &r.start_week, &r.start_day, &r.start_time))
      return false;
    if (pos >= s.size() || s[pos] != ',') return false;
    ++pos;
    if (!ParseDate(s, &pos, &r.end_month, &r.end_week, &r.end_day, &r.end_time)) return false;
    if (pos != s.size()) return false;
  }
  r.valid = true;
  *out = r;
  return true;
}

std::int64_t TimeZone::RuleOffsetAt(const Rule& r, std::int64_t utc_s) {
  if (!r.has_dst) return r.std_off;
  std::int64_t y;
  int m;
  CivilFromDays(FloorDiv(utc_s + r.std_off, kDay), &y, &m);
  // Transition instants in UTC: DST starts at local standard time, ends at local DST time.
  std::int64_t start =
      RuleDay(y, r.start_month, r.start_week, r.start_day) * kDay + r.start_time - r.std_off;
  std::int64_t end = RuleDay(y, r.end_month, r.end_week, r.end_day) * kDay + r.end_time - r.dst_off;
  bool dst = start < end ? (utc_s >= start && utc_s < end) : !(utc_s >= end && utc_s < start);
  return dst ? r.dst_off : r.std_off;
}

core::Result<TimeZone> TimeZone::Parse(std::string_view tzif) {
  Reader r{tzif};
  char version = 0;
  Counts c{};
  if (!ReadHeader(&r, &version, &c)) return Status::InvalidArgument("not a TZif time zone file");
  std::size_t time_size = 4;
  if (version >= '2') {
    // Skip the 32-bit block; the 64-bit one follows with its own header.
    r.Skip(c.time * 5 + c.type * 6 + c.chars + c.leap * 8 + c.isstd + c.isut);
    if (!r.ok || !ReadHeader(&r, &version, &c))
      return Status::InvalidArgument("truncated TZif time zone file");
    time_size = 8;
  }
  TimeZone z;
  for (std::uint64_t i = 0; i < c.time; ++i) {
    std::uint64_t v = r.Be(time_size);
    z.transitions_.push_back(time_size == 8
                                 ? static_cast<std::int64_t>(v)
                                 : static_cast<std::int64_t>(static_cast<std::int32_t>(v)));
  }
  for (std::uint64_t i = 0; i < c.time; ++i)
    z.transition_types_.push_back(static_cast<std::uint8_t>(r.Be(1)));
  bool found_std = false;
  for (std::uint64_t i = 0; i < c.type; ++i) {
    auto off = static_cast<std::int32_t>(r.Be(4));
    bool isdst = r.Be(1) != 0;
    r.Be(1);
    z.type_offsets_.push_back(off);
    if (!isdst && !found_std) {
      z.initial_offset_ = off;
      found_std = true;
    }
  }
  if (!found_std && !z.type_offsets_.empty()) z.initial_offset_ = z.type_offsets_[0];
  r.Skip(c.chars + c.leap * (time_size + 4) + c.isstd + c.isut);
  if (!r.ok) return Status::InvalidArgument("truncated TZif time zone file");
  for (auto t : z.transition_types_) {
    if (t >= z.type_offsets_.size())
      return Status::InvalidArgument("TZif transition names a missing type");
  }
  if (time_size == 8 && r.pos < tzif.size() && tzif[r.pos] == '\n') {
    auto end = tzif.find('\n', r.pos + 1);
    if (end != std::string_view::npos)
      ParseRule(tzif.substr(r.pos + 1, end - r.pos - 1), &z.footer_);
  }
  return z;
}

TimeZone TimeZone::Utc() { return TimeZone(); }

std::int64_t TimeZone::OffsetAt(std::int64_t utc_s) const {
  if (transitions_.empty()) return footer_.valid ? RuleOffsetAt(footer_, utc_s) : initial_offset_;
  if (utc_s < transitions_.front()) return initial_offset_;
  if (utc_s >= transitions_.back() && footer_.valid) return RuleOffsetAt(footer_, utc_s);
  auto it = std::upper_bound(transitions_.begin(), transitions_.end(), utc_s);
  std::size_t i = static_cast<std::size_t>(it - transitions_.begin()) - 1;
  return type_offsets_[transition_types_[i]];
}

ZoneCache::ZoneCache(core::Env* env, std::string dir) : env_(env), dir_(std::move(dir)) {
  if (dir_.empty()) {
    const char* tzdir = std::getenv("TZDIR");
    dir_ = tzdir != nullptr && *tzdir != '\0' ? tzdir : "/usr/share/zoneinfo";
  }
}

core::Result<std::shared_ptr<const TimeZone>> ZoneCache::Get(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = zones_.find(name);
  if (it != zones_.end()) return it->second;
  if (name == "UTC" || name == "Etc/UTC") {
    auto z = std::make_shared<const TimeZone>(TimeZone::Utc());
    zones_[name] = z;
    return z;
  }
  bool valid =
      !name.empty() && name.size() <= 64 && name[0] != '/' && name.find("..") == std::string::npos;
  for (char ch : name) {
    valid = valid && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '/' || ch == '_' ||
                      ch == '-' || ch == '+');
  }
  if (!valid)
    return Status::InvalidArgument("`" + name.substr(0, 64) + "` is not a time zone name");
  auto bytes = env_->ReadFile(core::JoinPath(dir_, name), 1 << 20);
  if (!bytes.ok()) {
    if (bytes.status().IsNotFound()) {
      return Status::NotFound("time zone " + name + " is not in " + dir_ +
                              " (install the tzdata package)");
    }
    return bytes.status().WithContext("time zone " + name);
  }
  auto parsed = TimeZone::Parse(*bytes);
  if (!parsed.ok()) return parsed.status().WithContext("time zone " + name);
  auto z = std::make_shared<const TimeZone>(std::move(*parsed));
  zones_[name] = z;
  return z;
}

core::Result<int> ParseClock(std::string_view s) {
  if (s.size() != 5 || s[2] != ':' || !std::isdigit(static_cast<unsigned char>(s[0])) ||
      !std::isdigit(static_cast<unsigned char>(s[1])) ||
      !std::isdigit(static_cast<unsigned char>(s[3])) ||
      !std::isdigit(static_cast<unsigned char>(s[4]))) {
    return Status::InvalidArgument("`" + std::string(s.substr(0, 16)) +
                                   "` is not a time of day HH:MM");
  }
  int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
  if (h > 23 || m > 59)
    return Status::InvalidArgument("`" + std::string(s) + "` is not a time of day HH:MM");
  return h * 60 + m;
}

core::Result<bool> InsideWindows(ZoneCache* zones, const std::vector<Window>& windows,
                                 std::int64_t utc_s) {
  if (windows.empty()) return true;
  for (const Window& w : windows) {
    DEPOT_ASSIGN_OR_RETURN(auto zone, zones->Get(w.tz));
    // Windows are laid out in local wall-clock time; one that spans a DST change is
    // an hour longer or shorter in real time, as an operator reading a clock expects.
    std::int64_t local = utc_s + zone->OffsetAt(utc_s);
    std::int64_t midnight = FloorDiv(local, kDay) * kDay;
    std::int64_t days_back = w.duration_s / kDay + 1;
    for (std::int64_t k = 0; k <= days_back; ++k) {
      std::int64_t start = midnight - k * kDay + w.start_minute * 60;
      if (local >= start && local < start + w.duration_s) return true;
    }
  }
  return false;
}

}  // namespace depot::core
