// The DP's syncer (internal to the dp component): verifies the upstream's metadata
// through TUF and mirrors it into the served tree, then copies one assigned version
// at a time -- its manifest checked against the signed hash, its chunks with bounded
// parallel downloads, each verified before it is stored -- and publishes the
// manifest last, so a client never sees a version whose chunks are not all here.
// A version the site asked to re-verify has every chunk re-hashed first (the
// reported ones before the rest) and damaged ones removed, so the sync refetches
// them; the ready that follows answers the request (3007).
//
// Failures back off per version (the book's core::Backoff; the site's retry time is
// authoritative when later). Between versions, content of versions no longer
// assigned is collected (collector.h).
//
// Thread safety: Run on one thread.
#pragma once

#include "dp/context.h"
#include "dp/version_check.h"
#include "repo/mirror.h"
#include "tuf/client.h"

namespace depot::dp {

class Syncer {
 public:
  explicit Syncer(DpContext* ctx) : ctx_(ctx) {}

  // Syncs until the book stops.
  void Run();

 private:
  core::Status InitTrust(tuf::Client* client);
  // Mirrors the verified TUF metadata into the public tree: versioned files first,
  // timestamp.json last (what clients read first), each written atomically.
  core::Status MirrorMetadata(tuf::Client& client);
  // Versions already published count as ready without refetching anything.
  void FindPublished();
  // Whether `a`'s published manifest verifies and its chunks are all present.
  bool PublishedComplete(const Assigned& a);
  core::Result<std::string> ManifestBytes(tuf::Client& client, const Assigned& a);
  core::Status SyncOne(tuf::Client& client, const Pick& pick);
  // Records `a` as published here (the versions table, which the collector reads).
  core::Status Record(const Assigned& a);
  core::Status Publish(const Assigned& a, const std::string& manifest_bytes);
  // The status message and log line of a finished sync or re-verification.
  void Announce(const Pick& pick, const VersionCheck& checked, const repo::MirrorResult& r);
  void Failed(const Assigned& a, const core::Status& s);

  DpContext* ctx_;
};

}  // namespace depot::dp
