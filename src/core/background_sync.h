// BackgroundSync makes a long run of writes durable while it is still being
// written, so the sync that must follow it (AtomicBatch::Commit's syncfs, a fetch's
// final sync) finds little left to write.
//
// Why: a snapshot or fetch writes hundreds of megabytes, then syncs. That sync runs
// the kernel's writeback on one thread while the writer waits: on two cores one sits
// idle for a second or more. Syncing every `every_bytes` from a helper thread lets the
// writeback run while the workers still compute, in large batches (a whole
// filesystem sync, not one call per file, which costs more kernel time).
//
// Nothing here changes what is durable when: the caller still syncs at the end, and
// renames nothing before. Errors matter, though: a writeback error reported to a
// background sync is not reported again to a later sync through another descriptor,
// so Stop() returns it and the caller must fail its batch.
//
// Thread safety: Wrote() may be called from any thread; Stop() from one.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "core/env.h"
#include "core/status.h"

namespace depot::core {

class BackgroundSync {
 public:
  // Syncs the filesystem holding `path` each time `every_bytes` more bytes have been
  // reported by Wrote(). `env` is not owned and must outlive this object.
  BackgroundSync(Env* env, std::string path, std::uint64_t every_bytes);
  ~BackgroundSync();  // Stop(), error ignored
  BackgroundSync(const BackgroundSync&) = delete;
  BackgroundSync& operator=(const BackgroundSync&) = delete;

  // Reports `n` more bytes written (to files on that filesystem).
  void Wrote(std::uint64_t n);

  // Stops the helper thread, waiting for a sync in progress, and returns the first
  // error a background sync met. Idempotent.
  Status Stop();

  std::uint64_t syncs() const;  // background syncs done so far

 private:
  void Run();

  Env* env_;
  std::string path_;
  std::uint64_t every_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t pending_ = 0;
  std::uint64_t syncs_ = 0;
  bool stop_ = false;
  Status first_error_;
  std::thread thread_;
};

}  // namespace depot::core
