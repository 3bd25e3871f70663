// Pull-through (internal to the dp component): a chunk of an assigned version asked
// for before the sync stored it is fetched from upstream, verified and stored by a
// bounded pool of workers (the DP's `parallel`), within the sync's rate limit
// (DpContext::schedule). Requests for a chunk already being pulled wait for that
// one fetch: the handler parks every request for it on the chunk's topic, which is
// notified when the fetch ends.
//
// Thread safety: Pull and LastFailure from any thread (the server's); Stop from one.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dp/context.h"

namespace depot::dp {

class PullThrough {
 public:
  // `ctx` must outlive the pool. `workers` fetch at once; at most `max_queued`
  // chunks wait for one.
  PullThrough(DpContext* ctx, unsigned workers, std::size_t max_queued);
  ~PullThrough();  // Stop()s

  // The topic a request for chunk `id` parks on; notified when its pull ends.
  static std::string Topic(std::string_view hex_id);

  enum class Queued {
    kQueued,        // a worker will fetch it
    kAlreadyGoing,  // queued or being fetched for an earlier request
    kRefused,       // the queue is full, or the pool stopped: try again later
  };
  // Asks for chunk `id` (`size` bytes uncompressed) to be pulled.
  Queued Pull(const store::ChunkId& id, std::uint32_t size);

  // Why the last pull of `id` failed, if it failed (bounded memory: the oldest
  // reasons are forgotten first).
  std::optional<core::Status> LastFailure(const store::ChunkId& id);

  // Stops taking pulls, wakes the requests still queued (their pull failed:
  // Unavailable) and waits for the fetches in progress. Idempotent.
  void Stop();

 private:
  struct Job {
    store::ChunkId id;
    std::uint32_t size;
  };
  void Work();
  core::Status Fetch(const Job& job);
  void Finish(const store::ChunkId& id, const core::Status& s);

  DpContext* ctx_;
  const std::size_t max_queued_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  std::set<store::ChunkId> going_;  // queued or being fetched
  std::map<store::ChunkId, core::Status> failed_;
  std::deque<store::ChunkId> failed_order_;  // oldest first
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace depot::dp
