#include "site/dp_reports.h"

#include <algorithm>
#include <set>

#include "core/backoff.h"
#include "core/hex.h"
#include "core/log.h"
#include "core/messages.h"
#include "site/distribution.h"
#include "site/messages.h"
#include "site/upward.h"

namespace depot::site {

using core::Status;

namespace {

constexpr std::size_t kMaxVerifyChunks = 64;

std::string MessageKey(const char* what, std::int64_t version_id, std::int64_t dp_id) {
  return std::string(what) + ":" + std::to_string(version_id) + ":" + std::to_string(dp_id);
}

struct Item {
  std::string package, state, error;
  std::int64_t version = 0, bytes_done = 0, bytes_total = 0, chunks_done = 0, chunks_total = 0;
  std::int64_t verified = 0;
};

core::Result<std::vector<Item>> ParseReport(const Json& body) {
  ObjectReader r(body, "DP report");
  const Json* list = r.Raw("versions");
  DEPOT_RETURN_IF_ERROR(r.Finish());
  if (list == nullptr || !list->is_array() || list->size() > 10000) {
    return Status::InvalidArgument(
        "DP report: field `versions` must be a list of at most 10000 items");
  }
  std::vector<Item> items;
  for (std::size_t i = 0; i < list->size(); ++i) {
    ObjectReader ir((*list)[i], "DP report item " + std::to_string(i));
    Item it;
    it.package = ir.String("package", true, 64);
    it.version = ir.Int("version", true, 1, INT64_MAX);
    it.state = ir.String("state", true, 16);
    it.bytes_done = ir.Int("bytes_done", false, 0, INT64_MAX);
    it.bytes_total = ir.Int("bytes_total", false, 0, INT64_MAX);
    it.chunks_done = ir.Int("chunks_done", false, 0, INT64_MAX);
    it.chunks_total = ir.Int("chunks_total", false, 0, INT64_MAX);
    it.error = ir.String("error", false, 2048);
    it.verified = ir.Int("verified", false, 0, INT64_MAX);
    DEPOT_RETURN_IF_ERROR(ir.Finish());
    if (it.state != "syncing" && it.state != "ready" && it.state != "failed") {
      return Status::InvalidArgument("DP report item " + std::to_string(i) +
                                     ": state must be syncing, ready or failed");
    }
    items.push_back(std::move(it));
  }
  return items;
}

// Applies one DP report item to its record. Sets *changed when agents' policies or
// the DP's assignment change.
Status ApplyItem(SiteContext& ctx, catalog::Tx& tx, std::int64_t dp_id, const std::string& dp_name,
                 const Item& it, Json* unknown, bool* changed) {
  auto rec = tx.QueryRow(
      "SELECT r.version_id, r.state, r.attempts, v.bytes, r.verify_seq FROM dp_records r JOIN "
      "versions v ON "
      "v.id = r.version_id JOIN packages p ON p.id = v.package_id WHERE r.dp_id = ? AND p.name = ? "
      "AND v.version = ?",
      {dp_id, it.package, it.version});
  if (!rec.ok()) {
    if (!rec.status().IsNotFound()) return rec.status();
    // Not (or no longer) assigned: the DP learns it from its assignment.
    unknown->push_back({{"package", it.package}, {"version", it.version}});
    return Status::Ok();
  }
  const std::int64_t version_id = rec->Int(0);
  const RecordState from = ParseRecordState(rec->Text(1)).value_or(RecordState::kPending);
  const std::int64_t verify_seq = rec->Int(4);
  // A ready report ends a verification only when it answers the latest request: one
  // sent before the DP saw the request says nothing about the reported damage.
  RecordEvent event = it.state == "syncing"  ? RecordEvent::kDpSyncing
                      : it.state == "failed" ? RecordEvent::kDpFailed
                      : from == RecordState::kVerifying && it.verified < verify_seq
                          ? RecordEvent::kDpReadyUnasked
                          : RecordEvent::kDpReady;
  const RecordState to = RecordNext(from, event).value_or(from);
  const std::int64_t now = ctx.NowMs();
  MessageSubject subject{it.package, it.version, dp_name, {}, {}};
  std::map<std::string, std::string> params = {
      {"dp", dp_name}, {"package", it.package}, {"version", std::to_string(it.version)}};
  // Progress is recorded whatever the state does; the state and its time only on a move.
  DEPOT_RETURN_IF_ERROR(
      tx.Exec(
            "UPDATE dp_records SET state = ?, state_since = CASE WHEN state = ? THEN "
            "state_since ELSE ? END, bytes_done = ?, bytes_total = ?, chunks_done = ?, "
            "chunks_total = ?, updated_at = ? WHERE version_id = ? AND dp_id = ?",
            {std::string(RecordStateName(to)), std::string(RecordStateName(to)), now, it.bytes_done,
             it.bytes_total, it.chunks_done, it.chunks_total, now, version_id, dp_id})
          .status());
  if (to != from && (from == RecordState::kReady || to == RecordState::kReady)) *changed = true;
  if (event == RecordEvent::kDpSyncing) {
    if (from == RecordState::kPending) {
      DEPOT_RETURN_IF_ERROR(PostMessage(ctx, tx, core::msg::kDpVersionSyncing, subject, params));
    }
    return Status::Ok();
  }
  if (event == RecordEvent::kDpReady) {
    DEPOT_RETURN_IF_ERROR(tx.Exec("UPDATE dp_records SET last_error = NULL, next_retry_at = NULL, "
                                  "verify_chunks = '[]', verify_reason = "
                                  "NULL WHERE version_id = ? AND dp_id = ?",
                                  {version_id, dp_id})
                              .status());
    if (from == RecordState::kVerifying) {
      *changed = true;  // back in policies, and the assignment drops the request
      return PostMessage(ctx, tx, core::msg::kDpVersionRestored, subject, params);
    }
    if (from != RecordState::kReady) {
      params["bytes"] = std::to_string(rec->Int(3));
      return PostMessage(ctx, tx, core::msg::kDpVersionReady, subject, params);
    }
    return Status::Ok();
  }
  if (event == RecordEvent::kDpReadyUnasked) return Status::Ok();
  // Failed: this record's own backoff; one message per failing record whose count grows.
  const std::int64_t attempts = rec->Int(2) + 1;
  const std::int64_t retry_at = now + core::ToMillis(core::BackoffDelay(
                                          {ctx.config.retry_base, ctx.config.retry_max}, attempts));
  DEPOT_RETURN_IF_ERROR(
      tx.Exec("UPDATE dp_records SET attempts = ?, next_retry_at = ?, last_error = ? WHERE "
              "version_id = ? AND dp_id = ?",
              {attempts, retry_at, it.error, version_id, dp_id})
          .status());
  params["error"] = it.error.empty() ? "unknown error" : it.error;
  params["next_retry"] = FormatMs(retry_at);
  params["attempts"] = std::to_string(attempts);
  *changed = true;  // the DP's assignment now carries the retry time
  return PostMessage(ctx, tx, core::msg::kDpVersionFailed, subject, params,
                     MessageKey("dp-failed", version_id, dp_id));
}

// "id1,id2,..." from an agent -> the valid lowercase chunk ids among them.
std::vector<std::string> ChunkIdsParam(const std::map<std::string, std::string>& params) {
  std::vector<std::string> out;
  auto it = params.find("chunks");
  if (it == params.end()) return out;
  std::string_view list = it->second;
  while (!list.empty() && out.size() < kMaxVerifyChunks) {
    std::size_t comma = list.find(',');
    std::string_view id = list.substr(0, comma);
    if (core::IsLowerHex(id, 64)) out.emplace_back(id);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  return out;
}

}  // namespace

std::string_view RecordStateName(RecordState s) {
  switch (s) {
    case RecordState::kPending:
      return "pending";
    case RecordState::kSyncing:
      return "syncing";
    case RecordState::kReady:
      return "ready";
    case RecordState::kFailed:
      return "failed";
    case RecordState::kVerifying:
      return "verifying";
  }
  return "pending";
}

std::optional<RecordState> ParseRecordState(std::string_view s) {
  for (RecordState r : {RecordState::kPending, RecordState::kSyncing, RecordState::kReady,
                        RecordState::kFailed, RecordState::kVerifying}) {
    if (RecordStateName(r) == s) return r;
  }
  return std::nullopt;
}

std::optional<RecordState> RecordNext(RecordState from, RecordEvent event) {
  using S = RecordState;
  using E = RecordEvent;
  struct Row {
    S from;
    E event;
    S to;
  };
  static constexpr Row kTable[] = {
      {S::kPending, E::kDpSyncing, S::kSyncing}, {S::kPending, E::kDpReady, S::kReady},
      {S::kPending, E::kDpFailed, S::kFailed},   {S::kSyncing, E::kDpReady, S::kReady},
      {S::kSyncing, E::kDpFailed, S::kFailed},   {S::kReady, E::kDpSyncing, S::kSyncing},
      {S::kReady, E::kDpFailed, S::kFailed},     {S::kReady, E::kAgentReported, S::kVerifying},
      {S::kFailed, E::kDpSyncing, S::kSyncing},  {S::kFailed, E::kDpReady, S::kReady},
      {S::kVerifying, E::kDpReady, S::kReady},   {S::kVerifying, E::kAgentReported, S::kVerifying},
  };
  for (const Row& r : kTable) {
    if (r.from == from && r.event == event) return r.to;
  }
  return std::nullopt;
}

core::Result<Json> DpReport(SiteContext& ctx, std::int64_t dp_id, const Json& body) {
  DEPOT_ASSIGN_OR_RETURN(std::vector<Item> items, ParseReport(body));
  SeenDp(ctx, dp_id);
  Json unknown = Json::array();
  bool changed = false;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    unknown = Json::array();
    changed = false;
    DEPOT_ASSIGN_OR_RETURN(auto dp, tx.QueryRow("SELECT name FROM dps WHERE id = ?", {dp_id}));
    for (const Item& it : items)
      DEPOT_RETURN_IF_ERROR(ApplyItem(ctx, tx, dp_id, dp.Text(0), it, &unknown, &changed));
    // A state change is the parent's business too (progress within a state is not).
    return changed ? MarkUp(ctx, tx, "dp", dp.Text(0)) : Status::Ok();
  });
  if (!s.ok()) return s;
  if (changed) ctx.Changed();
  return Json{{"accepted", items.size() - unknown.size()}, {"not_assigned", unknown}};
}

Status OnAgentReport(SiteContext& ctx, catalog::Tx& tx, const std::string& client_uid, int code,
                     const std::string& package, std::optional<std::int64_t> version,
                     const std::map<std::string, std::string>& params, bool* changed) {
  if (code != core::msg::kAgentSourceStale && code != core::msg::kAgentVerificationFailed)
    return Status::Ok();
  auto source = params.find("source");
  if (source == params.end() || !version || package.empty()) return Status::Ok();
  std::string url = source->second;
  while (!url.empty() && url.back() == '/') url.pop_back();
  constexpr std::string_view kRepo = "/repo";
  if (url.size() <= kRepo.size() ||
      url.compare(url.size() - kRepo.size(), kRepo.size(), kRepo) != 0) {
    return Status::Ok();
  }
  url.resize(url.size() - kRepo.size());
  // The DP's record of this version, if the reporting client is given the package.
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows recs,
                         tx.Query("SELECT r.version_id, r.dp_id, d.name, r.state, r.verify_seq, "
                                  "r.verify_chunks FROM dp_records r JOIN "
                                  "dps d ON d.id = r.dp_id JOIN versions v ON v.id = r.version_id "
                                  "JOIN packages p ON p.id = "
                                  "v.package_id WHERE d.url = ? AND p.name = ? AND v.version = ? "
                                  "AND v.state = 'active' AND EXISTS "
                                  "(SELECT 1 FROM deployments x JOIN collection_members m ON "
                                  "m.collection_id = x.collection_id JOIN "
                                  "clients c ON c.id = m.client_id WHERE c.uid = ? AND "
                                  "x.package_id = p.id AND x.cancelled_at IS NULL)",
                                  {url, package, *version, client_uid}));
  const std::vector<std::string> reported = ChunkIdsParam(params);
  for (const auto& r : recs) {
    const RecordState from = ParseRecordState(r.Text(3)).value_or(RecordState::kPending);
    if (!RecordNext(from, RecordEvent::kAgentReported)) continue;  // already out of policies
    Json old = Json::parse(r.Text(5), nullptr, false);
    std::vector<std::string> chunks;
    if (old.is_array()) {
      for (const auto& c : old) {
        if (c.is_string()) chunks.push_back(c.get<std::string>());
      }
    }
    bool added = false;
    for (const auto& c : reported) {
      if (chunks.size() >= kMaxVerifyChunks) break;
      if (std::find(chunks.begin(), chunks.end(), c) == chunks.end()) {
        chunks.push_back(c);
        added = true;
      }
    }
    const bool was_ready = from == RecordState::kReady;
    const std::string what = code == core::msg::kAgentSourceStale ? "stale" : "bad bytes";
    auto error = params.find("error");
    std::string reason =
        "client " + client_uid + " found it " + what +
        (error != params.end() ? ": " + error->second.substr(0, 512) : std::string());
    // A new request (seq + 1) when the record leaves the policies or there is more to check.
    if (was_ready || added) {
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("UPDATE dp_records SET state = 'verifying', state_since = CASE WHEN state = "
                  "'verifying' THEN state_since ELSE ? END, verify_seq = verify_seq + 1, "
                  "verify_chunks = ?, verify_reason = ?, updated_at = ? WHERE version_id = ? AND "
                  "dp_id = ?",
                  {ctx.NowMs(), Dump(Json(chunks)), reason, ctx.NowMs(), r.Int(0), r.Int(1)})
              .status());
      *changed = true;
    }
    MessageSubject subject{package, *version, r.Text(2), client_uid, {}};
    DEPOT_RETURN_IF_ERROR(PostMessage(ctx, tx, core::msg::kDpVersionWithheld, subject,
                                      {{"dp", r.Text(2)},
                                       {"package", package},
                                       {"version", std::to_string(*version)},
                                       {"client", client_uid},
                                       {"problem", what},
                                       {"chunks", std::to_string(chunks.size())}},
                                      MessageKey("dp-withheld", r.Int(0), r.Int(1))));
    core::Log(core::LogLevel::kWarn, "site.dp_withheld",
              {{"dp", r.Text(2)},
               {"package", package},
               {"version", std::to_string(*version)},
               {"reason", reason}});
  }
  return Status::Ok();
}

}  // namespace depot::site
