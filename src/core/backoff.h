// The one backoff: capped exponential with full jitter, on the clock seam.
//
// After n consecutive failures the next attempt waits a delay drawn uniformly from
// [0, min(max, base * 2^(n-1))] ("full jitter"): many clients that failed together
// spread their retries instead of arriving together again, and no failing thing
// waits longer than `max`. The retry schedules that use it: the site's
// per-(version, DP) records and DP probes, the DP's polls, syncs (per version),
// metadata refreshes and reports, the agent's deployments, polls and reports, fetch
// and mirror rounds (repo/chunk_download.h), snapshot re-reads.
//
// Delays run on the monotonic clock (Clock::Monotonic), so a wall clock that jumps
// neither postpones nor hurries a retry. What must survive a restart is saved as a
// failure count and a wall time (State); restoring clamps a due time further away
// than `max` (scheduled by a clock that has since gone back) to now + max.
//
// Thread safety: a Backoff is used by one thread at a time; BackoffDelay is pure
// apart from drawing a random number.
#pragma once

#include <cstdint>

#include "core/clock.h"

namespace depot::core {

struct BackoffPolicy {
  Duration base = std::chrono::seconds(1);
  Duration max = std::chrono::minutes(10);
};

// The delay before the next attempt after `failures` (>= 1) consecutive failures.
// `unit` in [0, 1) picks the point in the jitter range (tests pass fixed values);
// the overload draws it.
Duration BackoffDelay(const BackoffPolicy& policy, std::int64_t failures, double unit);
Duration BackoffDelay(const BackoffPolicy& policy, std::int64_t failures);
// The most BackoffDelay can return for `failures`: min(max, base * 2^(failures-1)).
Duration BackoffCap(const BackoffPolicy& policy, std::int64_t failures);

class Backoff {
 public:
  // `clock` must outlive the backoff.
  Backoff(Clock* clock, BackoffPolicy policy) : clock_(clock), policy_(policy) {}

  // Records a failure and schedules the next attempt; returns the delay.
  Duration Failed();
  // Records a success: the next attempt is due at once, the count starts over.
  void Succeeded();

  std::int64_t failures() const { return failures_; }
  // Whether the next attempt may start now (always, when nothing failed).
  bool Due() const { return failures_ == 0 || clock_->Monotonic() >= due_; }
  // How long until it is due (zero when due).
  Duration Remaining() const;
  // When the next attempt is due, by the wall clock (for messages and persistence).
  TimePoint DueWall() const { return clock_->Now() + Remaining(); }

  // What to persist, and how to pick it up after a restart.
  struct State {
    std::int64_t failures = 0;
    std::int64_t due_wall_ms = 0;  // 0: due at once
  };
  State Save() const;
  void Restore(const State& s);

 private:
  Clock* clock_;
  BackoffPolicy policy_;
  std::int64_t failures_ = 0;
  MonoTime due_{};
};

}  // namespace depot::core
