// The DP's HTTP handler (internal to the dp component): /healthz, /metrics, and
// /repo/ -- the URL layout served from disk (static_files), chunk batches, and
// pull-through: a chunk or manifest of an assigned version that is not here yet is
// fetched from upstream, verified and stored on a background thread while the request
// is parked, then served from disk. Unverified bytes are never sent.
//
// Thread safety: Handle runs on the server's I/O threads, concurrently.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string_view>

#include "dp/context.h"

namespace depot::dp {

class Handler : public http::Handler {
 public:
  // `ctx` must outlive the handler.
  explicit Handler(DpContext* ctx) : ctx_(ctx) {}
  ~Handler() override { WaitIdle(); }

  // Waits for the pull-through fetches still running (they notify the server: stop
  // it, then wait, then destroy it).
  void WaitIdle();

  http::Admission Admit(const http::Request& head) override;
  void Handle(http::Request& req, http::Response* resp) override;

 private:
  void PullThrough(http::Request& req, std::string_view rel, http::Response* resp);
  void PullChunk(http::Request& req, const store::ChunkId& id, std::string_view hex,
                 http::Response* resp);

  DpContext* ctx_;
  std::mutex mu_;
  std::condition_variable idle_;  // no fetch running
  int fetching_ = 0;
  std::set<store::ChunkId> pulling_;  // pull-through fetches in flight
  std::map<store::ChunkId, core::Status>
      failed_;           // why the last pull-through of a chunk failed (bounded)
  std::mutex fetch_mu_;  // serialises pull-through downloads (bounded upstream use)
};

}  // namespace depot::dp
