#include "agent/reporter.h"

#include <nlohmann/json.hpp>

#include "core/json_text.h"

namespace depot::agent {

using core::Status;
using Json = nlohmann::json;

namespace {

constexpr std::size_t kBatch = 500;

Json ReportsJson(const std::vector<Report>& reports) {
  Json out = Json::array();
  for (const auto& r : reports) {
    std::string detail = r.detail;
    if (r.state == State::kFailedRetry) {
      detail += (detail.empty() ? "" : "; ") + std::string("retry at ") +
                core::FormatUtc(core::FromUnixMillis(r.next_try_ms));
    }
    Json rep = {{"deployment", r.deployment},
                {"seq", r.seq},
                {"state", std::string(ReportedState(r.state))},
                {"version", r.version},
                {"detail", detail.substr(0, 4000)}};
    if (r.exit_code) rep["exit_code"] = *r.exit_code;
    out.push_back(std::move(rep));
  }
  return out;
}

}  // namespace

Status SendReports(StateStore* state, http::Client* site) {
  for (int round = 0; round < 100; ++round) {
    DEPOT_ASSIGN_OR_RETURN(catalog::OutboxBatch batch, state->PendingMessages(kBatch));
    DEPOT_ASSIGN_OR_RETURN(std::vector<Report> reports, state->PendingReports(kBatch));
    if (batch.count == 0 && reports.empty()) return Status::Ok();
    std::string body = "{\"messages\":" + batch.json +
                       ",\"deployments\":" + core::DumpJson(ReportsJson(reports)) + "}";
    DEPOT_ASSIGN_OR_RETURN(http::ClientResponse resp,
                           site->Do("POST", "/api/v1/agent/status", body));
    DEPOT_RETURN_IF_ERROR(http::ApiError(resp, "status to " + site->base_url()));
    if (batch.count > 0) DEPOT_RETURN_IF_ERROR(state->AckMessages(batch.last_seq));
    DEPOT_RETURN_IF_ERROR(state->MarkReported(reports));
    if (batch.count < kBatch && reports.size() < kBatch) return Status::Ok();
  }
  return Status::Ok();
}

}  // namespace depot::agent
