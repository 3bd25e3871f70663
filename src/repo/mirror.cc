#include "repo/mirror.h"

#include <mutex>
#include <thread>

#include "core/crash_point.h"
#include "core/atomic_batch.h"
#include "core/log.h"
#include "core/parallel.h"
#include "core/rate_limiter.h"
#include "repo/layout.h"
#include "store/compress.h"

namespace depot::repo {

using core::Status;

core::Result<MirrorResult> MirrorChunks(core::Env* env, core::Clock* clock, core::RepoSource* source,
                                        store::ChunkStore* store, const std::vector<store::ChunkRef>& chunks,
                                        const MirrorOptions& o) {
  MirrorResult result;
  std::vector<store::ChunkRef> missing;
  for (const auto& c : chunks) {
    DEPOT_ASSIGN_OR_RETURN(bool has, store->Has(c.id));
    if (!has) {
      missing.push_back(c);
      continue;
    }
    if (o.progress_bytes) *o.progress_bytes += c.size;
    if (o.progress_chunks) ++*o.progress_chunks;
  }
  const unsigned threads = o.threads ? o.threads : core::DefaultConcurrency();
  const std::uint64_t transfer_start = source->BytesFetched();
  core::AtomicBatch batch(env, store->root());
  std::mutex mu;  // guards batch commits, result and first_error
  Status first_error;
  std::uint64_t uncommitted = 0;
  auto last_commit = std::chrono::steady_clock::now();
  auto commit_locked = [&]() -> Status {
    uncommitted = 0;
    last_commit = std::chrono::steady_clock::now();
    Status s = batch.Commit();
    core::CrashPoint("mirror.chunks_committed");
    return s;
  };
  core::Duration backoff = o.first_backoff;
  core::RateLimiter limiter(clock, o.max_rate);
  for (int round = 1; !missing.empty(); ++round) {
    std::vector<core::FetchRequest> requests;
    requests.reserve(missing.size());
    for (const auto& c : missing) {
      requests.push_back({std::string(kChunksDir) + "/" + store::ChunkRelPath(c.id), store::MaxFrameSize(c.size)});
    }
    std::vector<store::ChunkRef> retry;
    Status last_transient;
    struct Work {
      std::size_t index;
      core::Result<std::string> frame;
    };
    // Frames are handed over a few at a time (see core::BatchPusher).
    constexpr std::size_t kHandOff = 8;
    core::BlockingQueue<std::vector<Work>> queue(64 / kHandOff);
    core::BatchPusher<Work> pusher(&queue, kHandOff);
    std::vector<std::thread> workers;
    for (unsigned w = 0; w < threads; ++w) {
      workers.emplace_back([&] {
        while (auto works = queue.Pop()) {
          for (Work& work : *works) {
            const store::ChunkRef& c = missing[work.index];
            Status s;
            if (!work.frame.ok()) {
              s = work.frame.status();
            } else {
              s = store->PutFrame(c.id, c.size, *work.frame, &batch).status();
              if (!s.ok() && !s.IsIOError()) {
                s = Status::Corruption("chunk " + core::DigestHex(c.id) + " from " +
                                       source->Describe() + ": " + s.message());
                if (o.on_rejected) o.on_rejected(c.id, s);
              }
            }
            std::lock_guard<std::mutex> lock(mu);
            if (!s.ok()) {
              if (s.IsUnavailable() || s.IsCorruption()) {
                if (s.IsCorruption()) ++result.rejected;
                retry.push_back(c);
                last_transient = s;
              } else if (first_error.ok()) {
                first_error = s.WithContext("chunk " + core::DigestHex(c.id));
              }
              continue;
            }
            ++result.chunks;
            result.bytes += c.size;
            uncommitted += c.size;
            if (o.progress_bytes) *o.progress_bytes += c.size;
            if (o.progress_chunks) ++*o.progress_chunks;
            if (uncommitted >= o.commit_bytes ||
                std::chrono::steady_clock::now() - last_commit >= o.commit_interval) {
              Status cs = commit_locked();
              if (!cs.ok() && first_error.ok()) first_error = cs.WithContext("storing chunks");
            }
          }
        }
      });
    }
    bool stopped = false;
    Status fs = source->FetchMany(
        requests, o.parallel, [&](std::size_t k, core::Result<std::string> frame) {
          if (o.cancelled && o.cancelled()) {
            stopped = true;
            return false;
          }
          // Ahead of the allowed average: pause (staying cancellable).
          limiter.Throttle(frame.ok() ? frame->size() : 0, o.cancelled);
          {
            std::lock_guard<std::mutex> lock(mu);
            if (!first_error.ok()) return false;
          }
          return pusher.Push(Work{k, std::move(frame)});
        });
    if (!stopped) pusher.Flush();
    queue.Close();
    for (auto& t : workers) t.join();
    {
      std::lock_guard<std::mutex> lock(mu);
      Status cs = commit_locked();
      if (!cs.ok() && first_error.ok()) first_error = cs.WithContext("storing chunks");
    }
    result.transfer_bytes = source->BytesFetched() - transfer_start;
    DEPOT_RETURN_IF_ERROR(first_error);
    if (stopped) return Status::Unavailable("stopped");
    if (!fs.ok()) return fs;
    if (retry.empty()) break;
    if (round >= o.max_rounds) {
      return last_transient.WithContext(std::to_string(retry.size()) + " chunks still failing after " +
                                        std::to_string(round) + " attempts");
    }
    core::Log(core::LogLevel::kWarn, "mirror.retry",
              {{"chunks", std::to_string(retry.size())}, {"round", std::to_string(round)},
               {"error", last_transient.message()}});
    clock->SleepFor(backoff);
    backoff *= 2;
    missing = std::move(retry);
  }
  return result;
}

}  // namespace depot::repo
