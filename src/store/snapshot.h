// Snapshot: turns a source directory into manifest entries and stored chunks.
//
// The walk records directories, regular files and symlinks (which must stay inside
// the tree) with their modes; anything else (FIFO, socket, device) is an error that
// names the path. Files are read, chunked (FastCDC), hashed and compressed on all
// cores. Each file is read consistently: its size, mtime, ctime and inode are compared
// before and after the read (and the path re-checked), and a file that changed is
// re-read with exponential backoff; after the last attempt the snapshot fails naming
// the file. A file modified within the filesystem's timestamp granularity before the
// read is read only once that window has passed, so a same-tick change cannot hide.
//
// All-or-nothing: new chunks are staged in one AtomicBatch and become visible only
// when every file has been read; on any error nothing new is left behind.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/env.h"
#include "store/chunk_store.h"
#include "store/chunker.h"
#include "store/compress.h"
#include "store/manifest.h"

namespace depot::store {

// How a snapshot learns which chunks the store already has.
enum class PresenceCheck {
  kAuto,    // list the store once unless it is much larger than the source
  kList,    // list the store once (ChunkStore::ListIds)
  kLookup,  // look each new chunk up (ChunkStore::Has)
};

// Where a snapshot sends its new chunks instead of a chunk store (the CLI streams
// them to a site this way).
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  // Receives one distinct chunk of the snapshot: its id, uncompressed size and zstd
  // frame (valid only during the call). Called from worker threads concurrently; may
  // block (backpressure). An error fails the snapshot. A file that changes while it
  // is read is read again, so a sink may receive chunks no manifest ends up using.
  virtual core::Status Put(const ChunkId& id, std::uint32_t size, std::string_view frame) = 0;
};

struct SnapshotOptions {
  ChunkerParams chunker;
  // When set, every distinct chunk goes to the sink and Snapshot's `store` may be
  // null: nothing is written locally.
  ChunkSink* sink = nullptr;
  PresenceCheck presence = PresenceCheck::kAuto;
  unsigned threads = 0;  // 0: one per available core
  int compression_level = kDefaultCompressionLevel;
  int max_attempts = 5;  // reads of one file before giving up on it
  // Sync the store's filesystem in the background after this many bytes of new
  // chunk files (core::BackgroundSync), so the final commit has little left to
  // write; 0: only at the commit.
  std::uint64_t background_sync_bytes = 128ull << 20;
  core::Duration first_backoff = std::chrono::milliseconds(100);
  core::Clock* clock = core::Clock::Real();  // for backoff sleeps
  // Optional progress counters, updated as work is done (any thread may read them).
  std::atomic<std::uint64_t>* progress_bytes = nullptr;
  std::atomic<std::uint64_t>* progress_files = nullptr;
  // Set once the walk has sized the tree: total file bytes to read.
  std::atomic<std::uint64_t>* progress_total = nullptr;
};

struct SnapshotStats {
  std::uint64_t files = 0, dirs = 0, symlinks = 0;
  std::uint64_t bytes = 0;         // total file bytes
  std::uint64_t chunk_refs = 0;    // chunks referenced by files
  std::uint64_t new_chunks = 0;    // chunks this snapshot stored
  std::uint64_t new_bytes = 0;     // their uncompressed bytes
  std::uint64_t stored_bytes = 0;  // their compressed bytes, as written
  std::uint64_t reused_bytes = 0;  // bytes of chunks already present (or repeated)
  std::uint64_t retries = 0;       // file re-reads caused by concurrent changes
};

struct SnapshotResult {
  std::vector<Entry> entries;  // sorted by path, ready for a Manifest
  SnapshotStats stats;
};

// Snapshots `source_dir` into `store` (or options.sink). `env` and `store` are not owned. Errors:
// InvalidArgument (unsupported file type, escaping symlink, bad name),
// NotFound (the source, or a file that vanished mid-walk), PermissionDenied
// (unreadable file or directory), IOError (a file that kept changing, disk errors).
// Every message names the path at fault. Safe to run concurrently with other
// snapshots into the same store.
core::Result<SnapshotResult> Snapshot(core::Env* env, const std::string& source_dir,
                                      ChunkStore* store, const SnapshotOptions& options);

}  // namespace depot::store
