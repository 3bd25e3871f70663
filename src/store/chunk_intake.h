// ChunkIntake takes verified chunks from many concurrent requests (a site receiving
// uploads) and makes them durable in group commits.
//
// Why: committing each upload request on its own cost a filesystem sync, the renames
// and a second sync per 8 MiB request (~85 per 1 GiB tree), each with the request's
// server thread waiting in syncfs(2). Here a request verifies its chunks and writes
// their temp files; a committer thread syncs and renames them in groups, off the
// request threads, and whoever needs the chunks visible (a version commit) calls
// Flush().
//
// Guarantees:
// - Put() verifies before anything is written: the frame must decompress to `size`
//   bytes that hash to the id. Unverified bytes never reach a temp file.
// - A chunk appears under its final name only complete and durable (AtomicBatch:
//   temp, sync, rename, sync); a crash leaves temp files that carry this process's
//   pid, which ChunkStore's sweeps remove once the process is gone.
// - Flush() returns only after every chunk whose Put() returned before the call is
//   durable under its final name (or with the error that prevented it).
//
// Thread safety: every method may be called from any thread concurrently. One
// committer thread is owned by the intake and joined by the destructor.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "store/chunk_store.h"

namespace depot::store {

struct ChunkIntakeOptions {
  // Commit as soon as this many frame bytes are staged (keeps the final Flush short
  // and the kernel's writeback running alongside the upload).
  std::uint64_t commit_bytes = 128ull << 20;
  // Commit anything staged for this long (an upload whose client went away still
  // ends up in the store, where collection handles it like any unreferenced chunk).
  std::chrono::milliseconds max_delay{1000};
  // How long Verified() vouches for a committed chunk. Must be shorter than the time
  // after which garbage collection may remove an unreferenced chunk (the site uses
  // half its grace period, at most 10 minutes).
  std::chrono::milliseconds remember_for{std::chrono::minutes(10)};
  // The delay and remember_for run on this clock's monotonic time (tests: a manual one).
  core::Clock* clock = core::Clock::Real();
};

struct ChunkIntakeStats {
  std::uint64_t commits = 0;         // group commits that committed something
  std::uint64_t failed_commits = 0;  // commits that failed (their chunks were dropped)
  std::uint64_t committed_chunks = 0;
};

class ChunkIntake {
 public:
  // `store` is not owned and must outlive the intake. Starts the committer thread.
  ChunkIntake(ChunkStore* store, ChunkIntakeOptions options = {});
  // Commits what is staged (errors are logged), then stops the committer thread.
  ~ChunkIntake();
  ChunkIntake(const ChunkIntake&) = delete;
  ChunkIntake& operator=(const ChunkIntake&) = delete;

  // Verifies `frame` (one zstd frame of `size` uncompressed bytes hashing to `id`) and
  // stages it unless the intake already holds it. The store is not consulted (callers
  // ask which chunks are missing first; a chunk sent anyway is rewritten with the same
  // bytes). `*scratch` is the caller's decompression buffer, reused across calls.
  // Returns whether it was staged (false: already staged or being committed).
  // Errors: Corruption (bytes do not match the id, or the frame is malformed), IOError
  // (writing the temp file).
  core::Result<bool> Put(const ChunkId& id, std::uint32_t size, std::string_view frame,
                         std::string* scratch);

  // Asks the committer thread to commit what is staged now instead of waiting for
  // the size bound or the delay, and returns at once. Meant for the end of an upload:
  // the commit then runs while the client sends the manifest, and the version
  // commit's Flush() finds little or nothing left to do. Errors surface at the next
  // Flush(), as for any background commit.
  void CommitSoon();

  // Whether the chunk is staged or being committed (not yet under its final name).
  bool Staged(const ChunkId& id) const;

  // Commits everything staged now, after any commit already running. Returns the
  // error of the commit it ran or, failing that, of the first commit the committer
  // thread ran since the last Flush (IOError naming the sync or rename that failed;
  // the chunks of a failed commit are removed and must be uploaded again).
  core::Status Flush();

  // Whether this intake committed the chunk, with `size` uncompressed bytes, within
  // `remember_for`: it is then under its final name and need not be opened to check
  // its size again (a version commit of a large upload skips ~50 k opens).
  bool Verified(const ChunkId& id, std::uint64_t size) const;

  ChunkIntakeStats stats() const;

 private:
  struct Pending {
    ChunkId id;
    std::string temp;
    std::uint64_t bytes = 0;
    std::uint32_t size = 0;  // uncompressed
  };
  struct Remembered {
    std::uint32_t size;
    core::MonoTime committed;
  };

  void CommitterLoop();
  // Takes what is staged and commits it. Caller holds commit_mu_.
  core::Status CommitStaged();

  ChunkStore* store_;
  const ChunkIntakeOptions options_;

  // Serialises commits, so Flush() also waits for a commit the committer is running.
  std::mutex commit_mu_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::vector<Pending> staged_;
  std::uint64_t staged_bytes_ = 0;
  core::MonoTime first_staged_;
  ChunkIdSet known_;  // staged_ plus the commit in flight
  // Committed chunks, oldest first in `remembered_order_` (bounded by count and age).
  std::unordered_map<ChunkId, Remembered, ChunkIdHash> remembered_;
  std::deque<ChunkId> remembered_order_;
  ChunkIntakeStats stats_;
  core::Status background_error_;  // first failed committer commit since the last Flush
  bool stop_ = false;
  bool commit_soon_ = false;  // CommitSoon() was called: commit without waiting
  std::thread committer_;
};

}  // namespace depot::store
