// A link's transfer schedule: a byte rate shared by every transfer over the link and
// daily windows outside which no bulk content moves (metadata and status still do).
// A child site's link to its parent and a DP's link to its site each have one, set by
// the operator at the upper end and carried down with the feed or the assignment, so
// a change applies at the next poll, without a restart (docs/hierarchy.md).
//
// Thread safety: every method from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/env.h"
#include "core/rate_limiter.h"
#include "core/time_windows.h"

namespace depot::core {

class TransferSchedule {
 public:
  // `env` (for the tz database) and `clock` must outlive the schedule. `local_rate`
  // is a cap of this end's own configuration (0: none); the effective rate is the
  // lower of it and the operator's. `log_name` prefixes the schedule's log events
  // ("dp.window_closed").
  TransferSchedule(Env* env, Clock* clock, std::uint64_t local_rate, std::string log_name);

  // Takes the operator's schedule as carried on the wire:
  // {"max_rate": BYTES_PER_S, "windows": [{"start": "HH:MM", "duration_s": N, "tz": Z}]}.
  // Missing keys mean no limit and no windows; an unreadable window is skipped and
  // logged (the link is not held closed by a window it cannot read).
  void Set(const nlohmann::json& schedule);

  // Whether bulk content may move now. A window whose time zone this machine lacks
  // keeps the link closed and is logged: a slow link's business hours are not guessed.
  // Opening, closing and a zone error are logged once each (this runs per chunk).
  bool Open();

  // The limiter every bulk transfer of the link throttles through.
  RateLimiter* limiter() { return &limiter_; }

 private:
  Clock* clock_;
  const std::uint64_t local_rate_;
  const std::string log_name_;
  RateLimiter limiter_;
  ZoneCache zones_;
  std::mutex mu_;
  std::vector<Window> windows_;  // under mu_
  int last_open_ = -1;           // under mu_: -1 unknown
  std::string last_zone_error_;  // under mu_: the one last logged
};

// The effective rate of a link: the lower of two caps where 0 means none.
std::uint64_t LowerRate(std::uint64_t a, std::uint64_t b);

}  // namespace depot::core
