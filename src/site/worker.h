// The site's background threads (internal to the site component): the worker, which
// runs DP probes, housekeeping (retention, recovery of interrupted versions, content
// collection, child link health) and metadata refresh on timers, each in the one
// process that holds its lease (processes.h); and the heartbeat, which keeps this
// process alive in site_processes and its leases renewed, on its own thread so a long
// job never makes the process look dead.
//
// Thread safety: each loop runs on its own thread until `stop` is set (under `mu`,
// with `cv` notified).
#pragma once

#include <condition_variable>
#include <mutex>

#include "site/context.h"

namespace depot::site {

void WorkerLoop(SiteContext& c, std::mutex& mu, std::condition_variable& cv, const bool& stop);
void HeartbeatLoop(SiteContext& c, std::mutex& mu, std::condition_variable& cv, const bool& stop);

}  // namespace depot::site
