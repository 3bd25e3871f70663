// A distribution point (docs/dp.md, docs/architecture.md): holds verified copies of
// the package versions its site assigns to it, close to the agents, and serves them
// over HTTP.
//
// Data directory (its public part is the URL layout, so nginx or a CDN can serve it):
//   DIR/dp.toml          site URL, token (the file is 0600), upstream, listen, limits
//   DIR/repo/metadata/   TUF metadata mirrored from upstream after verification
//   DIR/repo/targets/    manifests, published only once all their chunks are present
//   DIR/repo/chunks/     the chunk store
//   DIR/state/           the DP's own state: trusted TUF metadata, staged manifests,
//                        state.db (versions, removal times, the message outbox)
//
// Work, each on its own thread: the assignment poller (long-polls the site, so an idle
// DP costs nothing); the syncer (verifies metadata through TUF, mirrors one version
// at a time with bounded parallel downloads, publishes its manifest last, reports;
// failures back off per version as the site says); the reporter (progress, states
// and status messages to the site, at least once); the scrubber (re-hashes stored
// objects at a bounded rate, removes and refetches damaged ones); and, on the
// syncer's thread when it has nothing due, the collector (content of versions no
// longer assigned is deleted after a grace period, except chunks other assigned
// versions still use).
//
// Thread safety: a DistributionPoint is started and stopped by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/env.h"
#include "core/status.h"

namespace depot::dp {

struct DpConfig {
  std::string site;  // site base URL, e.g. https://site:8443
  // More URLs of the same site (its other processes, docs/scale-out.md): the DP moves
  // to the next when one fails, for the site's API and (without upstream) content.
  std::vector<std::string> more_sites;
  std::string token;     // this DP's token (from `depot dp add`)
  std::string upstream;  // base URL to copy from; "" = the site (a parent DP also works)
  std::string listen = "0.0.0.0:8081";
  std::string tls_cert, tls_key;           // serve HTTPS when both are set
  std::string ca;                          // CA bundle to trust for the site/upstream (private CA)
  std::uint64_t max_sync_rate = 0;         // bytes/s for syncing, 0 = unlimited
  unsigned parallel = 8;                   // concurrent chunk downloads
  std::uint64_t scrub_rate = 32ull << 20;  // bytes/s the scrubber re-hashes
  core::Duration scrub_every = std::chrono::hours(24);   // a full pass at most this often
  core::Duration scrub_start = std::chrono::minutes(1);  // the first pass this long after start
  core::Duration gc_grace = std::chrono::hours(1);       // unassigned content kept this long
  core::Duration retry_base = std::chrono::seconds(10);  // local backoff when the site is silent
  core::Duration retry_max = std::chrono::minutes(30);
  core::Duration poll_wait =
      std::chrono::seconds(60);  // long-poll of the assignment (site caps it at 120 s)
  std::size_t max_connections = 10'000;
  std::size_t max_connections_per_address = 0;  // 0: a quarter of max_connections
  std::string access_log;  // one JSON line per HTTP request appended here; "" = none
};

// Reads DIR/dp.toml. NotFound when absent (with the command that creates it).
core::Result<DpConfig> LoadDpConfig(core::Env* env, const std::string& data_dir);
// Writes DIR/dp.toml (0600: it holds the token).
core::Status SaveDpConfig(core::Env* env, const std::string& data_dir, const DpConfig& config);

struct VerifyFinding {
  std::string object;  // "chunks/ab/ab12...", "targets/tools/<hash>.3.json"
  std::string problem;
  bool repaired = false;
};

struct VerifyReport {
  std::uint64_t chunks = 0, bytes = 0, manifests = 0;
  std::vector<VerifyFinding> findings;
};

class DistributionPoint {
 public:
  // Opens (creating the layout on first use) the data directory. `env` and `clock`
  // must outlive the DP.
  static core::Result<std::unique_ptr<DistributionPoint>> Open(core::Env* env, core::Clock* clock,
                                                               const std::string& data_dir,
                                                               const DpConfig& config);
  ~DistributionPoint();  // Stop()s

  // Starts serving and syncing. Unavailable when the listen address is taken.
  core::Status Start();
  // Graceful stop: the syncer commits what it verified, the server answers what is
  // in flight.
  void Stop();

  std::string url() const;  // after Start
  std::uint16_t port() const;

  // Re-hashes every chunk and published manifest now. With `repair`, damaged objects
  // are removed and refetched from upstream (needs the site to be reachable).
  core::Result<VerifyReport> Verify(bool repair);

  struct Impl;

 private:
  explicit DistributionPoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace depot::dp
