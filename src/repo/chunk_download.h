// The one chunk downloader: what an agent's fetch and a DP's sync (mirror) share.
// It fetches "chunks/<2 hex>/<id>" from a source with bounded parallelism, through a
// rate limiter, hands each response to worker threads that verify and keep it (the
// caller's Deliver), and retries what may pass -- a failed or cut-off transfer, bytes
// that fail verification -- in later rounds with backoff (core::Backoff). Anything
// else stops the download with that error.
//
// Thread safety: DownloadChunks runs on the calling thread (the transfers) plus
// `threads` workers, which call Deliver concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/rate_limiter.h"
#include "core/source.h"
#include "core/status.h"
#include "store/manifest.h"

namespace depot::repo {

struct DownloadOptions {
  unsigned parallel = 8;  // transfers in flight
  unsigned threads = 1;   // Deliver workers
  int max_rounds = 3;     // rounds for chunks whose failure may pass
  core::BackoffPolicy backoff{std::chrono::milliseconds(200), std::chrono::seconds(10)};
  // Receive-rate cap in bytes/s over the whole download (0: none); enforced by pausing
  // the transfer loop, so TCP backpressure slows the source.
  std::uint64_t max_rate = 0;
  // Shared with other downloads instead (max_rate is then ignored). Not owned.
  core::RateLimiter* limiter = nullptr;
  // Polled between responses; when it returns true the download stops (Unavailable
  // "cancelled"). Optional.
  std::function<bool()> cancelled;
  // Which worker handles chunk i (modulo `threads`): e.g. the file it lands in first,
  // so two workers never write one file. Optional; default: spread by index.
  std::function<std::size_t(std::size_t)> worker_of;
  // Where the downloader says what it is doing ("fetch", "mirror").
  const char* log_name = "download";
  // Called every `tick_interval` on the clock, from a thread of the download's own,
  // for as long as the download runs -- also while no chunk arrives (a source that
  // stalls): where callers make what was delivered so far durable. Optional; must
  // not block long.
  std::function<void()> tick;
  core::Duration tick_interval = std::chrono::seconds(1);
};

// Receives chunk `index`'s response (the frame, or the transfer's error) on a worker
// thread, with a per-worker scratch buffer. Returns OK when the chunk is done;
// Unavailable or Corruption to try it again next round; any other error stops the
// download and is its result.
using DeliverFn = std::function<core::Status(std::size_t index, core::Result<std::string>& frame,
                                             std::string* scratch)>;

// Downloads the chunks `todo` (indices into `chunks`). OK when every one was
// delivered; the last transient error, with the count still failing, after
// max_rounds; the first hard error otherwise; Unavailable when cancelled.
core::Status DownloadChunks(core::Clock* clock, core::RepoSource* source,
                            const std::vector<store::ChunkRef>& chunks,
                            std::vector<std::size_t> todo, const DownloadOptions& options,
                            const DeliverFn& deliver);

}  // namespace depot::repo
