#include "core/transfer_schedule.h"

#include "core/json_text.h"
#include "core/log.h"

namespace depot::core {

using Json = nlohmann::json;

std::uint64_t LowerRate(std::uint64_t a, std::uint64_t b) {
  if (a == 0) return b;
  if (b == 0) return a;
  return std::min(a, b);
}

TransferSchedule::TransferSchedule(Env* env, Clock* clock, std::uint64_t local_rate,
                                   std::string log_name)
    : clock_(clock),
      local_rate_(local_rate),
      log_name_(std::move(log_name)),
      limiter_(clock, local_rate),
      zones_(env) {}

void TransferSchedule::Set(const Json& schedule) {
  std::uint64_t rate = 0;
  if (schedule.is_object() && schedule.contains("max_rate")) {
    const Json& r = schedule["max_rate"];
    if (r.is_number_unsigned()) {
      rate = r.get<std::uint64_t>();
    } else if (r.is_number_integer() && r.get<std::int64_t>() > 0) {
      rate = static_cast<std::uint64_t>(r.get<std::int64_t>());
    }
  }
  std::vector<Window> windows;
  Json list = schedule.is_object() ? schedule.value("windows", Json::array()) : Json::array();
  if (!list.is_array()) list = Json::array();
  for (const auto& w : list) {
    auto start = w.is_object() ? ParseClock(w.value("start", "")) : ParseClock("");
    const std::int64_t duration_s =
        w.is_object() && w.contains("duration_s") && w["duration_s"].is_number_integer()
            ? w["duration_s"].get<std::int64_t>()
            : 0;
    if (!start.ok() || duration_s <= 0) {
      Log(LogLevel::kWarn, log_name_ + ".window_unreadable", {{"window", DumpJson(w)}});
      continue;
    }
    Window win;
    win.start_minute = *start;
    win.duration_s = duration_s;
    win.tz = w.value("tz", "UTC");
    windows.push_back(std::move(win));
  }
  std::lock_guard lock(mu_);
  windows_ = std::move(windows);
  limiter_.SetRate(LowerRate(local_rate_, rate));
}

bool TransferSchedule::Open() {
  std::lock_guard lock(mu_);
  auto inside = InsideWindows(&zones_, windows_, UnixMillis(clock_->Now()) / 1000);
  const bool open = inside.ok() && *inside;
  const std::string zone_error = inside.ok() ? "" : inside.status().ToString();
  if (zone_error != last_zone_error_) {
    if (!zone_error.empty()) {
      Log(LogLevel::kWarn, log_name_ + ".window_zone", {{"error", zone_error}});
    }
    last_zone_error_ = zone_error;
  }
  if (last_open_ != static_cast<int>(open)) {
    if (last_open_ != -1 || !open) {
      Log(LogLevel::kInfo, log_name_ + (open ? ".window_open" : ".window_closed"), {});
    }
    last_open_ = open;
  }
  return open;
}

}  // namespace depot::core
