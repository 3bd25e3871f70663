#include "dp/poller.h"

#include <algorithm>

#include "core/backoff.h"
#include "core/log.h"
#include "dp/version_check.h"

namespace depot::dp {

using core::Status;
using Json = nlohmann::json;

void Poller::Run() {
  VersionBook& book = ctx_->book;
  core::Backoff backoff(ctx_->clock, {ctx_->cfg.retry_base, ctx_->cfg.retry_max});
  std::string etag;
  std::unique_ptr<http::Client> client;
  while (!book.Stopping()) {
    if (!backoff.Due() && book.Sleep(backoff.Remaining())) return;
    if (!client) {
      auto c = ctx_->SiteClient(150);
      if (!c.ok()) {
        core::Log(core::LogLevel::kError, "dp.site_client", {{"error", c.status().ToString()}});
        backoff.Failed();
        continue;
      }
      client = std::move(*c);
    }
    std::vector<std::string> headers;
    if (!etag.empty()) headers.push_back("If-None-Match: " + etag);
    const std::int64_t wait_s = std::clamp<std::int64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(ctx_->cfg.poll_wait).count(), 1, 120);
    auto r = client->Do("GET", "/api/v1/dp/assignment?wait=" + std::to_string(wait_s), {},
                        "application/json", headers, static_cast<int>(wait_s + 90));
    if (book.Stopping()) return;
    // 304 is the long poll's normal end when nothing changed, not a failure to back off from.
    Status s = !r.ok()            ? r.status()
               : r->status == 304 ? Status::Ok()
                                  : http::ApiError(*r, "assignment");
    if (!s.ok() || (r->status != 200 && r->status != 304)) {
      backoff.Failed();
      core::Log(core::LogLevel::kWarn, "dp.assignment_failed",
                {{"error", s.ok() ? "HTTP " + std::to_string(r->status) : s.ToString()},
                 {"attempt", std::to_string(backoff.failures())}});
      client.reset();
      continue;
    }
    if (r->status == 304) {
      backoff.Succeeded();
      continue;
    }
    Json j = Json::parse(r->body, nullptr, false);
    if (j.is_discarded() || !j.contains("versions") || !j["versions"].is_array()) {
      core::Log(core::LogLevel::kWarn, "dp.assignment_malformed", {});
      backoff.Failed();
      continue;
    }
    backoff.Succeeded();
    if (const std::string* e = r->GetHeader("etag")) etag = *e;
    ctx_->schedule.Set(j.value("schedule", Json::object()));
    ctx_->metrics.max_rate->Set(static_cast<double>(ctx_->schedule.limiter()->rate()));
    Apply(ParseAssignment(j));
  }
}

void Poller::Apply(std::map<std::string, Assigned> next) {
  AssignmentDelta delta = ctx_->book.Apply(std::move(next));
  const std::int64_t now = core::UnixMillis(ctx_->clock->Now());
  Status s = ctx_->db->Transaction([&](catalog::Tx& tx) -> Status {
    for (const auto& t : delta.removed) {
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("UPDATE versions SET removed_at = ? WHERE target = ? AND removed_at IS NULL",
                  {now, t})
              .status());
    }
    for (const auto& t : delta.added) {
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("UPDATE versions SET removed_at = NULL WHERE target = ?", {t}).status());
    }
    return Status::Ok();
  });
  if (!s.ok()) core::Log(core::LogLevel::kWarn, "dp.state_failed", {{"error", s.ToString()}});
  if (!delta.removed.empty()) {
    core::Log(core::LogLevel::kInfo, "dp.unassigned",
              {{"versions", std::to_string(delta.removed.size())}});
  }
  // The chunks an agent reported are checked straight away (a damaged one is removed,
  // so it is not served again); the whole version follows on the syncer.
  for (const Assigned& a : delta.to_verify) {
    core::Log(core::LogLevel::kInfo, "dp.verify_requested",
              {{"target", a.target},
               {"seq", std::to_string(a.verify_seq)},
               {"chunks", std::to_string(a.verify_chunks.size())}});
    for (const auto& id : a.verify_chunks) {
      std::string why;
      if (CheckChunk(&ctx_->chunks, id, &why) == ChunkHealth::kDamaged)
        ctx_->ReportDamage(id, a, why);
    }
  }
  if (!delta.to_verify.empty() && ctx_->tree) ctx_->tree->CloseKeptFiles();
}

}  // namespace depot::dp
