#include "dp/reporter.h"

#include "catalog/outbox.h"
#include "core/backoff.h"
#include "core/json_text.h"
#include "core/log.h"

namespace depot::dp {

using core::Status;
using Json = nlohmann::json;

namespace {

constexpr core::Duration kPeriod = std::chrono::seconds(1);
constexpr std::size_t kBatch = 500;

}  // namespace

void Reporter::Run() {
  VersionBook& book = ctx_->book;
  core::Backoff backoff(ctx_->clock, {ctx_->cfg.retry_base, ctx_->cfg.retry_max});
  std::unique_ptr<http::Client> client;
  while (!book.Sleep(std::max(kPeriod, backoff.Remaining()))) {
    if (!client) {
      auto c = ctx_->SiteClient(30);
      if (!c.ok()) continue;
      client = std::move(*c);
    }
    Status s = SendReports(client.get());
    if (s.ok()) s = SendMessages(client.get());
    if (s.ok()) {
      backoff.Succeeded();
      continue;
    }
    backoff.Failed();
    client.reset();
    if (backoff.failures() == 1 || backoff.failures() % 30 == 0) {
      core::Log(core::LogLevel::kWarn, "dp.report_failed", {{"error", s.ToString()}});
    }
  }
}

Status Reporter::SendReports(http::Client* client) {
  std::vector<ReportRow> rows = ctx_->book.DueReports();
  if (rows.empty()) return Status::Ok();
  Json versions = Json::array();
  for (auto& r : rows) versions.push_back(std::move(r.json));
  DEPOT_ASSIGN_OR_RETURN(
      http::ClientResponse r,
      client->Do("POST", "/api/v1/dp/report", core::DumpJson({{"versions", versions}})));
  DEPOT_RETURN_IF_ERROR(http::ApiError(r, "report"));
  ctx_->book.Reported(rows);
  return Status::Ok();
}

Status Reporter::SendMessages(http::Client* client) {
  for (;;) {
    DEPOT_ASSIGN_OR_RETURN(catalog::OutboxBatch batch, catalog::ReadOutbox(ctx_->db.get(), kBatch));
    if (batch.count == 0) return Status::Ok();
    DEPOT_ASSIGN_OR_RETURN(
        http::ClientResponse resp,
        client->Do("POST", "/api/v1/dp/messages", "{\"messages\":" + batch.json + "}"));
    DEPOT_RETURN_IF_ERROR(http::ApiError(resp, "messages"));
    DEPOT_RETURN_IF_ERROR(catalog::AckOutbox(ctx_->db.get(), batch.last_seq));
    if (batch.count < kBatch) return Status::Ok();
  }
}

}  // namespace depot::dp
