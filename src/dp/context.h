// What the parts of a DP share (internal to the dp component): its configuration,
// its directory layout and chunk store, its state database with the message outbox,
// the upstream it copies from, the version book, the served tree and the metrics.
// DistributionPoint owns one DpContext; the poller, syncer, reporter, scrubber,
// collector and request handler each hold a pointer to it.
//
// Thread safety: the members are set up before any thread starts and not replaced
// while they run (`server` is set once Start has it); each member is itself safe for
// the concurrent use the parts make of it (see their headers).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "catalog/db.h"
#include "core/clock.h"
#include "core/env.h"
#include "core/metrics.h"
#include "core/transfer_schedule.h"
#include "dp/dp.h"
#include "dp/versions.h"
#include "http/client.h"
#include "http/curl_source.h"
#include "http/server.h"
#include "http/static_files.h"
#include "repo/layout.h"
#include "store/chunk_store.h"

namespace depot::dp {

// The DP's counters in /metrics.
struct DpMetrics {
  explicit DpMetrics(core::Registry* r);
  core::Counter* synced_bytes;
  core::Counter* synced_chunks;
  core::Counter* rejected;
  core::Counter* scrubbed_bytes;
  core::Counter* scrub_damage;
  core::Counter* repaired;
  core::Counter* pull_through;
  core::Counter* scrub_passes;
  core::Gauge* window_open;  // 1 while the link's schedule lets content move
  core::Gauge* max_rate;     // bytes/s the sync and pull-through share (0: none)
};

struct DpContext {
  DpContext(core::Env* env, core::Clock* clock, std::string dir, DpConfig config);

  // Creates the layout, opens and migrates state.db, the upstream and the served tree.
  core::Status Open();

  core::Env* env;
  core::Clock* clock;
  std::string dir;
  DpConfig cfg;
  repo::RepoLayout layout;
  store::ChunkStore chunks;
  std::string state_dir, staged_dir, tuf_dir;
  std::unique_ptr<catalog::Db> db;
  // Fetch() from any thread, FetchMany() from the syncer. The upstream, or else the
  // site -- with more_sites, whichever of its processes answers (core::FailoverSource).
  std::unique_ptr<core::RepoSource> upstream;
  std::unique_ptr<http::StaticTree> tree;
  http::Server* server = nullptr;  // set by Start
  core::Registry registry;
  DpMetrics metrics{&registry};
  VersionBook book;
  // The link's schedule: the site's rate and windows (from the assignment) within
  // --max-sync-rate; its limiter is shared by the sync and pull-through. Outside a
  // window the syncer copies nothing (metadata and reports still move).
  core::TransferSchedule schedule{env, clock, cfg.max_sync_rate, "dp"};
  std::atomic<bool> abort_requests{false};  // ends long polls and reports at Stop

  // The base URL of what the DP copies from (its upstream, or else the site).
  std::string UpstreamBase() const { return cfg.upstream.empty() ? cfg.site : cfg.upstream; }
  // A client for the site's DP API, authenticated with the DP's token; aborted by Stop.
  core::Result<std::unique_ptr<http::Client>> SiteClient(long timeout_s);

  // Appends a status message to the outbox (delivered by the reporter); a failure to
  // store it is logged.
  void Post(int code, const std::string& package, std::int64_t version,
            std::map<std::string, std::string> params);
  // Logs, counts and posts (3005) a damaged chunk of `a`.
  void ReportDamage(const store::ChunkId& id, const Assigned& a, const std::string& why);

  // Where a version's manifest is published (its name carries its hash), and where a
  // manifest fetched before its chunks waits.
  std::string PublishedPath(const std::string& package, std::int64_t version,
                            const std::string& manifest_id) const;
  std::string StagedPath(const std::string& manifest_id) const;
  // The manifest of `a` from disk (staged or published), verified against its hash;
  // NotFound when neither is here and intact.
  core::Result<std::string> ManifestBytesLocal(const Assigned& a) const;
  // ... or else from upstream, checked against the hash the (authenticated) site's
  // assignment names, and staged.
  core::Result<std::string> ManifestBytesUpstream(const Assigned& a);
  // Fetches chunk `id` (`size` bytes uncompressed) from upstream, verifies and stores
  // it (repair and pull-through), within the schedule's rate like the sync.
  core::Status Refetch(const store::ChunkId& id, std::uint32_t size);
  // Records that `chunks` of a known manifest are wanted (for repair and pull-through).
  void WantChunksOf(const std::string& manifest_bytes);

  // A full disk would also refuse the outbox row that reports it: a few pages are
  // kept in reserve (state/disk-reserve) and given up exactly then, so the message is
  // stored and delivered; the reserve comes back once space does.
  void KeepDiskReserve();
  void GiveUpDiskReserve();
};

}  // namespace depot::dp
