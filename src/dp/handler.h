// The DP's HTTP handler (internal to the dp component): /healthz, /metrics, and
// /repo/ -- the URL layout served from disk (static_files), chunk batches, and
// pull-through: a chunk or manifest of an assigned version that is not here yet is
// fetched from upstream, verified and stored on a background thread while the request
// is parked (PullThrough: a bounded pool), then served from disk. Unverified bytes
// are never sent.
//
// Thread safety: Handle runs on the server's I/O threads, concurrently.
#pragma once

#include <string_view>

#include "dp/context.h"
#include "dp/pull_through.h"

namespace depot::dp {

class Handler : public http::Handler {
 public:
  // `ctx` must outlive the handler.
  // Chunks waiting for a pull-through worker at most; past it, 503 + Retry-After.
  static constexpr std::size_t kMaxQueuedPulls = 4096;

  // `ctx` must outlive the handler; its configuration is loaded.
  explicit Handler(DpContext* ctx) : ctx_(ctx), pull_(ctx, ctx->cfg.parallel, kMaxQueuedPulls) {}
  ~Handler() override { WaitIdle(); }

  // Stops pull-through and waits for the fetches still running (they notify the
  // server: stop it, then wait, then destroy it).
  void WaitIdle() { pull_.Stop(); }

  http::Admission Admit(const http::Request& head) override;
  void Handle(http::Request& req, http::Response* resp) override;

 private:
  void PullMissing(http::Request& req, std::string_view rel, http::Response* resp);
  void PullChunk(http::Request& req, const store::ChunkId& id, std::string_view hex,
                 http::Response* resp);

  DpContext* ctx_;
  PullThrough pull_;
};

}  // namespace depot::dp
