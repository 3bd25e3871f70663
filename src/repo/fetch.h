// Fetch: download, verify and materialise one package version from any repository
// source (a directory, a site, a DP, nginx). The walk is TUF all the way down:
// root -> timestamp -> snapshot -> targets -> manifest -> chunks, every link checked
// by signature, hash and length; every chunk by SHA-256 and size; every assembled file
// by its SHA-256. Chunks are taken from the cache when present, the rest fetched in
// parallel. The destination appears complete and verified, or not at all; verified
// chunks stay in the cache even when the fetch fails or is interrupted.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/env.h"
#include "core/source.h"
#include "core/status.h"
#include "store/manifest.h"

namespace depot::repo {

// A local tree laid out as `manifest` describes, such as an installed version: the
// fetch takes from it every chunk it needs that is there, read at the chunk's offset
// in the first file that holds it and verified against its id. The tree may have
// changed since it was written; a chunk that fails verification there is only a miss.
struct FetchSeed {
  std::string dir;
  const store::Manifest* manifest = nullptr;  // not owned; must outlive the fetch
};

// Where a fetch to `dest` keeps an unfinished tree for the next fetch to the same
// place (FetchRequest::keep_partial): a hidden sibling of `dest`.
std::string PartialPath(const std::string& dest);

// For a directory entry named `name`: the base name of the destination whose partial
// tree or (possibly abandoned) staging tree it is, or "" when it is neither. Lets a
// caller that owns the destinations' parent directory clean up after fetches.
std::string_view LeftoverOf(std::string_view name);

// What a failed fetch learned, for callers that choose between sources.
struct FetchDiagnostics {
  // The newest signed version of the package the source offered when the requested
  // one was missing (0: none at all). Set with a NotFound.
  std::int64_t newest_available = 0;
  // The source does not offer the requested version: not in its signed targets, or
  // its manifest is missing (404) there.
  bool version_missing = false;
  // The source's signed metadata is older than what this client already trusts
  // (tuf::Client::refused_older): a mirror that is behind. Set with a Corruption.
  bool source_behind = false;
  // The failure is this machine's, not the source's: preparing the cache or the
  // staging tree, writing or placing verified chunks, moving the tree into place (e.g.
  // a directory removed underneath the fetch, which reads as NotFound). Another source
  // would fail the same way.
  bool local_failure = false;
  // The signed manifest itself is unacceptable (an unsafe path, limits exceeded,
  // not what it is signed as): every source serves the same bytes, so no retry helps.
  bool manifest_refused = false;
  // Chunks this source served with bytes that failed verification, or did not have
  // at all although it offers the version (at most kMaxBadChunks, first found first):
  // what a report about the source names, so it can check those first.
  static constexpr std::size_t kMaxBadChunks = 16;
  std::vector<store::ChunkId> bad_chunks;
};

struct FetchRequest {
  std::string package;
  std::int64_t version = 0;    // 0: the newest signed version
  std::string dest;            // must not exist
  std::string trusted_root;    // bytes of the pinned root.json
  std::string cache_dir;       // "" for none: then trusted metadata lives in memory only
  unsigned parallel = 16;      // concurrent downloads
  std::uint64_t max_rate = 0;  // average bytes/s over all chunk downloads, 0 = unlimited
  unsigned threads = 0;        // verify/assemble workers; 0: all cores
  int max_rounds = 4;          // download rounds for chunks that failed transiently
  // Sync the destination's filesystem in the background after this many bytes are
  // placed (core::BackgroundSync), so the final sync has little left; 0: only then.
  std::uint64_t background_sync_bytes = 128ull << 20;
  core::Duration first_backoff = std::chrono::milliseconds(200);
  // Progress counters (bytes placed into the tree, and its total) for a CLI bar.
  std::atomic<std::uint64_t>* progress_bytes = nullptr;
  std::atomic<std::uint64_t>* progress_total = nullptr;
  // When set and it becomes true, the fetch stops soon (Unavailable "cancelled");
  // what was verified so far stays in the cache. Not owned.
  const std::atomic<bool>* cancel = nullptr;
  FetchDiagnostics* diagnostics = nullptr;  // filled on failure when set; not owned
  // Local trees to take chunks from before the cache and the source (see FetchSeed).
  // Besides these, a fetch always looks in DEST's partial tree and in staging trees
  // that killed fetches to DEST left behind, and removes them once it is done.
  std::vector<FetchSeed> seeds;
  // Whether chunks fetched from the source are also written to cache_dir. A caller
  // that keeps the tree it fetched and passes it as a seed next time (the agent) turns
  // this off: one copy of every byte on disk, and no file per chunk to create.
  bool cache_fetched = true;
  // On a failure or cancellation after chunks began to be placed, keep the unfinished
  // tree as DEST's partial tree instead of deleting it, so the next fetch to DEST
  // takes what was verified from it (it is re-verified then). Without it, only the
  // cache keeps what a failed fetch verified.
  bool keep_partial = false;
  // A trusted peer's clock relative to this machine's (its time minus ours), when
  // known: an expiry refusal then says whose clock is off (tuf::Client::
  // SetReferenceClock). The agent passes its site's.
  struct ReferenceClock {
    std::string name;
    core::Duration offset;
  };
  std::optional<ReferenceClock> reference_clock;
};

struct FetchResult {
  std::string package;
  std::int64_t version = 0;
  std::string manifest_id;
  std::string manifest;                  // its exact signed bytes
  std::vector<store::Program> programs;  // the manifest's, parsed and verified with it
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;         // file bytes in the tree
  std::uint64_t chunks = 0;        // distinct chunks
  std::uint64_t cache_chunks = 0;  // taken locally: from the cache, seeds or a partial tree
  std::uint64_t cache_bytes = 0;   // their uncompressed bytes
  std::uint64_t seed_chunks = 0;   // of those, taken from seeds and partial trees
  std::uint64_t seed_bytes = 0;    // their uncompressed bytes
  std::uint64_t fetched_chunks = 0;
  std::uint64_t fetched_bytes = 0;   // their uncompressed bytes
  std::uint64_t transfer_bytes = 0;  // bytes received from the source: metadata, manifest, chunks
  // Wall seconds per phase: TUF metadata and the manifest; the staging tree, seeds
  // and cache; the chunk transfer; syncing, checking and renaming the tree.
  double metadata_s = 0, prepare_s = 0, transfer_s = 0, finish_s = 0;
};

// Fetches into req.dest. Errors: NotFound (no such package or version; the message
// lists what exists), Corruption (a signature, hash or length check failed; names the
// object and the source), Unavailable (the source failed after retries),
// InvalidArgument (bad request, dest exists), IOError (local disk).
core::Result<FetchResult> FetchVersion(core::Env* env, core::Clock* clock, core::RepoSource* source,
                                       const FetchRequest& req);

}  // namespace depot::repo
