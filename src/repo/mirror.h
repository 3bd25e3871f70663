// Mirroring chunks from a repository source into a chunk store: what a DP does to
// copy a version (and to repair a damaged chunk). Every frame is verified --
// decompressed to its listed size and hashed to its id -- before it is written, and
// written through AtomicBatch commits every few megabytes or every second, so a kill
// loses at most the chunks fetched since the last commit and nothing unverified or
// partial is ever visible.
//
// The transfers, rounds, rate limit and backoff are the shared chunk downloader's
// (repo/chunk_download.h); what is particular to mirroring is storing each verified
// frame as it came and committing every few megabytes.
//
// Thread safety: MirrorChunks runs on the calling thread plus `threads` workers; the
// store may be used by other threads and processes meanwhile.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/clock.h"
#include "core/env.h"
#include "core/rate_limiter.h"
#include "core/source.h"
#include "core/status.h"
#include "store/chunk_store.h"
#include "store/manifest.h"
#include "tuf/client.h"

namespace depot::repo {

struct MirrorOptions {
  unsigned parallel = 8;  // concurrent downloads
  unsigned threads = 0;   // verify workers; 0: all cores
  int max_rounds = 3;     // download rounds for chunks that failed transiently
  core::Duration first_backoff = std::chrono::milliseconds(200);
  std::uint64_t commit_bytes = 8ull << 20;  // make stored chunks durable this often...
  core::Duration commit_interval = std::chrono::seconds(1);  // ...or this often
  // Average receive rate cap in bytes/s over the whole mirror (0: none). Enforced
  // by pausing the download loop, so TCP backpressure slows the source.
  std::uint64_t max_rate = 0;
  core::RateLimiter* limiter = nullptr;  // shared instead of max_rate (DownloadOptions)
  // Polled between chunks: when it returns true the mirror stops (Unavailable
  // "cancelled") after committing what it verified.
  std::function<bool()> cancelled;
  // Progress: uncompressed bytes and chunks present so far (those already in the
  // store are counted first, then each one stored).
  std::atomic<std::uint64_t>* progress_bytes = nullptr;
  std::atomic<std::uint64_t>* progress_chunks = nullptr;
  // Called for each chunk the source served that failed verification (a DP reports
  // it): chunk id, error.
  std::function<void(const store::ChunkId&, const core::Status&)> on_rejected;
};

struct MirrorResult {
  std::uint64_t chunks = 0;          // stored by this call
  std::uint64_t bytes = 0;           // their uncompressed bytes
  std::uint64_t transfer_bytes = 0;  // received from the source
  std::uint64_t rejected = 0;        // frames that failed verification
};

// Fetches every chunk of `chunks` the store lacks from "chunks/<2 hex>/<id>" at
// `source`, verifies it, stores it. NotFound when the source lacks a chunk;
// Corruption when a chunk kept failing verification; Unavailable when the source
// kept failing; IOError from the disk.
core::Result<MirrorResult> MirrorChunks(core::Env* env, core::Clock* clock,
                                        core::RepoSource* source, store::ChunkStore* store,
                                        const std::vector<store::ChunkRef>& chunks,
                                        const MirrorOptions& options);

// Publishes the TUF metadata `client` trusts (held in `trusted_dir`, the directory the
// client was made with) into `metadata_dir`, a served tree's metadata/: the versioned
// files first and timestamp.json last, so a reader never sees a timestamp whose
// snapshot is not there yet; files already identical are not rewritten. What a DP and
// a child site serve is their upstream's metadata byte for byte. Returns whether
// root.json changed; IOError from the disk.
core::Result<bool> PublishTrustedMetadata(core::Env* env, const tuf::Client& client,
                                          const std::string& trusted_dir,
                                          const std::string& metadata_dir);

}  // namespace depot::repo
