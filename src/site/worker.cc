#include "site/worker.h"

#include <algorithm>
#include <chrono>

#include "core/log.h"
#include "site/children.h"
#include "site/distribution.h"
#include "site/packages.h"
#include "site/processes.h"

namespace depot::site {

using core::Status;

namespace {

// Re-signs snapshot and timestamp (and what nears expiry) under the signer lock.
void Refresh(SiteContext& c) {
  auto signer = LockSigner(c);
  Status s = signer.ok() ? c.repo->Refresh() : signer.status();
  if (!s.ok()) core::Log(core::LogLevel::kError, "site.refresh_failed", {{"error", s.ToString()}});
}

// One pass over the store at start, off the start-up path: uploaded chunks a
// crashed site staged but never committed (temp files named after its pid) go,
// and every chunk id goes into the filter for missing-chunk queries (uploads
// staged meanwhile add their own; until it is ready, every query looks up).
void LoadChunkFilter(SiteContext& c) {
  auto t0 = std::chrono::steady_clock::now();
  std::uint64_t n = 0;
  auto swept = c.repo->chunks()->SweepAbandonedTemps([&](const store::ChunkId& id) {
    c.chunk_filter->Add(id);
    ++n;
  });
  if (swept.ok()) {
    c.chunk_filter->MarkReady();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    if (*swept > 0)
      core::Log(core::LogLevel::kInfo, "site.swept_temp_files",
                {{"files", std::to_string(*swept)}});
    core::Log(core::LogLevel::kInfo, "site.chunk_filter_loaded",
              {{"chunks", std::to_string(n)}, {"ms", std::to_string(ms.count())}});
  } else {
    core::Log(core::LogLevel::kWarn, "site.chunk_filter_failed",
              {{"error", swept.status().ToString()},
               {"effect", "missing-chunk queries look up every chunk"}});
  }
}

// Whether a version reservation belongs to a process that is gone.
bool OrphanedReservations(SiteContext& c) {
  auto n = c.db->QueryInt(
      "SELECT COUNT(*) FROM versions WHERE state = 'publishing' AND "
      "(reserved_by IS NULL OR NOT " +
          AliveSql("reserved_by") + ")",
      {LiveSince(c)});
  return n.ok() && *n > 0;
}

}  // namespace

void WorkerLoop(SiteContext& c, std::mutex& mu, std::condition_variable& cv, const bool& stop) {
  // Timers on the clock's monotonic time: a wall clock that jumps neither stops nor
  // floods housekeeping.
  core::MonoTime last_probe{};
  core::MonoTime last_minute = c.clock->Monotonic();
  core::MonoTime last_refresh = c.clock->Monotonic();
  // Every quarter of the timestamp's lifetime: three chances to re-sign before any
  // timestamp an agent holds expires, even across a site restart or a slow disk.
  auto refresh_every =
      std::max<core::Duration>(std::chrono::minutes(1), c.config.timestamp_lifetime / 4);
  // Retention, recovery and collection: every minute, or sooner when the grace
  // period is short (so content is collected within about a quarter of it).
  auto housekeeping_every = std::clamp<core::Duration>(
      c.config.gc_grace / 4, std::chrono::seconds(1), std::chrono::minutes(1));
  // Fresh signatures at start: a site down for days comes back with valid metadata.
  // (A child's metadata is its parent's, refreshed by its link.)
  const bool top = !c.config.is_child();
  if (top && HoldLease(c, "refresh")) Refresh(c);
  LoadChunkFilter(c);
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu);
      c.clock->WaitFor(lock, cv, std::chrono::milliseconds(500), [&stop] { return stop; });
      if (stop) return;
    }
    const core::MonoTime now = c.clock->Monotonic();
    if (now - last_probe >= std::chrono::seconds(2)) {
      last_probe = now;
      // Every process records what polled it (the probe below flushes first too).
      FlushSeen(c);
      if (HoldLease(c, "probe")) ProbeDps(c);
      // A version another process left half made (it died): finished or given back
      // within seconds, not at the next housekeeping.
      if (top && OrphanedReservations(c) && HoldLease(c, "housekeeping")) {
        RecoverVersions(c).IgnoreError();
      }
    }
    if (now - last_minute >= housekeeping_every && HoldLease(c, "housekeeping")) {
      last_minute = now;
      if (top) {
        ApplyRetention(c);
        RecoverVersions(c).IgnoreError();
      }
      CollectContent(c);
      CheckChildren(c);
    }
    if (top && now - last_refresh >= refresh_every && HoldLease(c, "refresh")) {
      last_refresh = now;
      Refresh(c);
    }
  }
}

void HeartbeatLoop(SiteContext& c, std::mutex& mu, std::condition_variable& cv, const bool& stop) {
  // A third of the ttl: two beats may be late before the process counts as dead.
  const core::Duration every = c.config.lease_ttl / 3;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu);
      c.clock->WaitFor(lock, cv, every, [&stop] { return stop; });
      if (stop) return;
    }
    Heartbeat(c);
  }
}

}  // namespace depot::site
