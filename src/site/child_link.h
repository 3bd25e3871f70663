// A child site's link to its parent (internal to the site component,
// docs/hierarchy.md). Two threads:
//   - the puller long-polls the parent's feed, mirrors the parent's signed TUF
//     metadata unchanged into this site's library, brings the catalog in line
//     (replica.h), and copies each missing version: manifest verified against the top
//     site's signed targets, only the chunks the library lacks, each verified before
//     it is stored, the manifest published last, then the version activated. Outside
//     the link's windows only the feed and metadata move; inside, transfers share the
//     link's rate limit. A failed copy backs off the link's content alone; the feed,
//     metadata and reports go on.
//   - the reporter sends what changed here (upward.h) in batches and drops what the
//     parent acknowledged.
// Link health (active, degraded, failed) counts consecutive failed contacts with the
// parent; each transition is one status message (6003-6005) and reported up.
//
// Thread safety: Start and Stop from one thread; the rest runs on the link's threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "core/status.h"
#include "site/context.h"

namespace depot::site {

// How a child waits for its parent (tests shorten these).
struct LinkTiming {
  int feed_wait_s = 30;                                      // long poll
  core::Duration report_every = std::chrono::seconds(1);     // while things are marked
  core::Duration metadata_every = std::chrono::seconds(30);  // timestamp refresh
  core::Duration retry_base = std::chrono::seconds(1);       // failed contact
  core::Duration retry_max = std::chrono::minutes(5);
};

class ChildLink {
 public:
  // Reads the token and sets up the parent's TUF client state (DIR/parent/).
  static core::Result<std::unique_ptr<ChildLink>> Open(SiteContext* ctx, LinkTiming timing = {});
  ~ChildLink();  // Stop()s

  void Start();
  void Stop();

 private:
  struct State;
  explicit ChildLink(std::unique_ptr<State> state);
  void Puller();
  void Reporter();
  std::unique_ptr<State> s_;
  std::thread puller_, reporter_;
};

// Joins a new child data directory to its parent (`depot site init --parent`): asks
// the parent for its trust and library settings, returns them. Unavailable when the
// parent cannot be reached, PermissionDenied for a bad token.
struct ParentTrust {
  std::string root;  // the top site's root.json, exact bytes
  std::string code;  // the parent's code
  std::uint32_t chunk_min = 0, chunk_avg = 0, chunk_max = 0;
  int compression_level = 0;
};
core::Result<ParentTrust> FetchParentTrust(const std::string& url, const std::string& token,
                                           const std::string& ca_file);

}  // namespace depot::site
