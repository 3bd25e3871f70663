#include "dp/handler.h"

#include <nlohmann/json.hpp>

#include "core/hex.h"
#include "core/log.h"

namespace depot::dp {

using core::Status;
using Json = nlohmann::json;

// Only chunk batches take a body; anything else that announces one is refused
// before it is read.
http::Admission Handler::Admit(const http::Request& head) {
  if (head.method == "POST" && head.path == "/repo/" + std::string(http::kChunkBatchPath)) {
    return {http::kMaxBatchBody, std::nullopt};
  }
  http::Response r = http::Response::Json(
      405, R"({"error":{"code":"InvalidArgument","message":"a DP takes no request body but a )"
           R"(chunk batch: POST /repo/chunks/batch"}})");
  r.SetHeader("Allow", "GET, HEAD");
  return {0, std::move(r)};
}

void Handler::Handle(http::Request& req, http::Response* resp) {
  if (req.path == "/healthz") {
    *resp = http::Response::Text(200, "ok\n");
    resp->SetHeader("Cache-Control", "no-cache");
    return;
  }
  if (req.path == "/metrics") {
    *resp = http::Response::Text(200, ctx_->registry.Render());
    resp->SetHeader("Content-Type", "text/plain; version=0.0.4");
    return;
  }
  if (req.path.rfind("/repo/", 0) != 0) {
    *resp =
        http::Response::Json(404, R"({"error":{"code":"NotFound","message":"no such object"}})");
    return;
  }
  std::string_view rel = std::string_view(req.path).substr(6);
  if (rel == http::kChunkBatchPath) {
    // What is not here yet is answered "-": the client asks for it alone, and that
    // GET reaches the pull-through below.
    ctx_->tree->ServeChunkBatch(req, resp);
    return;
  }
  ctx_->tree->Serve(req, rel, resp);
  if (resp->status != 404 || (req.method != "GET" && req.method != "HEAD")) return;
  PullMissing(req, rel, resp);
}

void Handler::PullMissing(http::Request& req, std::string_view rel, http::Response* resp) {
  if (rel.rfind("chunks/", 0) == 0 && rel.size() == 7 + 3 + 64) {
    auto id = core::ParseDigestHex(rel.substr(10));
    if (id.ok()) PullChunk(req, *id, rel.substr(10), resp);
    return;
  }
  if (rel.rfind("targets/", 0) == 0) {
    // targets/<package>/<sha256>.<version>.json of an assigned version.
    std::optional<Assigned> hit = ctx_->book.FindByManifestPath(rel);
    if (!hit) return;
    auto bytes = ctx_->ManifestBytesUpstream(*hit);
    if (!bytes.ok()) return;
    *resp = http::Response::Json(200, std::move(*bytes));
    resp->SetHeader("Cache-Control", "public, max-age=31536000, immutable");
    resp->SetHeader("ETag", "\"" + hit->manifest_id + "\"");
  }
}

void Handler::PullChunk(http::Request& req, const store::ChunkId& id, std::string_view hex,
                        http::Response* resp) {
  const std::uint32_t size = ctx_->book.WantedSize(id);
  if (size == 0) return;  // not ours: 404
  const std::string topic = PullThrough::Topic(hex);
  const std::uint64_t seq = ctx_->server->Sequence(topic);
  if (req.poll_round > 0) {
    // Woken (or timed out) after the pull: served from disk above if it worked.
    if (resp->status == 404) {
      Status why = pull_.LastFailure(id).value_or(
          Status::Unavailable("upstream could not supply the chunk"));
      // The DP's own disk (full, failing) is not the upstream's fault: 503, not 502.
      Json err = {
          {"error",
           {{"code", why.IsIOError() ? "IOError" : "Unavailable"}, {"message", why.message()}}}};
      *resp = http::Response::Json(why.IsIOError() ? 503 : 502, err.dump());
      if (why.IsIOError()) resp->SetHeader("Retry-After", "60");
    }
    return;
  }
  if (pull_.Pull(id, size) == PullThrough::Queued::kRefused) {
    *resp = http::Response::Json(
        503, R"({"error":{"code":"Unavailable","message":"too many chunks waiting for )"
             R"(pull-through; retry shortly"}})");
    resp->SetHeader("Retry-After", "1");
    return;
  }
  *resp = http::Response();
  resp->wait = http::Response::Wait{topic, seq, std::chrono::seconds(60)};
}

}  // namespace depot::dp
