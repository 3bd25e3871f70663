// DP liveness (declared in site/distribution.h): the sightings of DPs, clients and
// tokens that requests record, written in batches, and probes of DPs that stopped
// polling, each with its own backoff.
#include <algorithm>
#include <unordered_map>

#include "core/backoff.h"
#include "core/log.h"
#include "core/messages.h"
#include "http/client.h"
#include "site/distribution.h"
#include "site/messages.h"

namespace depot::site {

using core::Status;

void SeenDp(SiteContext& ctx, std::int64_t dp_id) {
  std::lock_guard<std::mutex> lock(ctx.seen_mu);
  ctx.dp_seen[dp_id] = ctx.NowMs();
}

namespace {

// Sets `column` of each row of `table` (by id) to its time, where that is at least
// `step_ms` later (a row is found by its key and left alone otherwise: no write).
Status UpdateTimes(catalog::Tx& tx, const std::string& table, const std::string& column,
                   const std::unordered_map<std::int64_t, std::int64_t>& times,
                   std::int64_t step_ms) {
  constexpr std::size_t kPerStatement = 500;
  auto it = times.begin();
  while (it != times.end()) {
    std::string values;
    std::vector<std::int64_t> ints;
    for (std::size_t n = 0; n < kPerStatement && it != times.end(); ++n, ++it) {
      values += values.empty() ? "(?, ?)" : ", (?, ?)";
      ints.push_back(it->first);
      ints.push_back(it->second);
    }
    ints.push_back(step_ms);
    const catalog::Params params(ints.begin(), ints.end());
    // A WITH list names the columns on both backends (SQLite has no `AS v(id, ms)`).
    const std::string sql = "WITH v(id, ms) AS (VALUES " + values + ") UPDATE " + table + " SET " +
                            column + " = v.ms FROM v WHERE " + table + ".id = v.id AND (" + table +
                            "." + column + " IS NULL OR " + table + "." + column + " <= v.ms - ?)";
    DEPOT_RETURN_IF_ERROR(tx.Exec(sql, params).status());
  }
  return Status::Ok();
}

}  // namespace

void FlushSeen(SiteContext& ctx) {
  std::unordered_map<std::int64_t, std::int64_t> dps, clients, tokens;
  {
    std::lock_guard<std::mutex> lock(ctx.seen_mu);
    dps.swap(ctx.dp_seen);
    clients.swap(ctx.client_seen);
    tokens.swap(ctx.token_used);
  }
  if (dps.empty() && clients.empty() && tokens.empty()) return;
  bool back = false;  // a DP being probed polled again: consoles show it reachable
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    back = false;
    for (const auto& [id, ms] : dps) {
      DEPOT_ASSIGN_OR_RETURN(
          auto row, tx.QueryRow("SELECT name, probe_attempts FROM dps WHERE id = ?", {id}));
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("UPDATE dps SET last_seen_at = ?, probe_attempts = 0, next_probe_at = NULL, "
                  "probe_error = NULL WHERE id = ?",
                  {ms, id})
              .status());
      if (row.Int(1) > 0) {  // it was being probed: it is back
        back = true;
        DEPOT_RETURN_IF_ERROR(PostMessage(ctx, tx, core::msg::kDpReachable,
                                          {{}, {}, row.Text(0), {}, {}}, {{"dp", row.Text(0)}}));
      }
    }
    // Many rows per statement: one round trip per few hundred clients, not per client
    // (on PostgreSQL each statement is one; a fleet's flush is thousands of rows).
    // A client's last sighting to the minute (or a quarter of the offline threshold,
    // when that is shorter): a fleet polling every minute would otherwise rewrite every
    // client row every minute.
    const std::int64_t step =
        std::min<std::int64_t>(60'000, core::ToMillis(ctx.config.client_offline_after) / 4);
    DEPOT_RETURN_IF_ERROR(UpdateTimes(tx, "clients", "last_seen_at", clients, step));
    // Tokens are noted at most once a minute already (Authenticate).
    return UpdateTimes(tx, "tokens", "last_used_at", tokens, 1);
  });
  if (!s.ok() && !s.IsNotFound()) {
    core::Log(core::LogLevel::kWarn, "site.last_seen_failed", {{"error", s.ToString()}});
  }
  if (s.ok() && back) ctx.Activity();
}

void ProbeDps(SiteContext& ctx) {
  // Pending sightings first, so a DP that just polled is not probed.
  FlushSeen(ctx);
  std::int64_t now = ctx.NowMs();
  std::int64_t offline_ms = core::ToMillis(ctx.config.dp_offline_after);
  auto rows = ctx.db->Query(
      "SELECT id, name, url, last_seen_at, probe_attempts FROM dps WHERE COALESCE(last_seen_at, "
      "created_at) < ? AND (next_probe_at IS NULL OR next_probe_at <= ?)",
      {now - offline_ms, now});
  if (!rows.ok()) return;
  for (const auto& r : *rows) {
    std::int64_t id = r.Int(0);
    std::string name = r.Text(1), url = r.Text(2);
    http::ClientOptions opts;
    const long timeout_s = std::max<long>(
        1, static_cast<long>(
               std::chrono::duration_cast<std::chrono::seconds>(ctx.config.probe_timeout).count()));
    opts.connect_timeout_s = std::min<long>(5, timeout_s);
    opts.timeout_s = timeout_s;
    opts.max_response_bytes = 4096;
    if (!ctx.config.tls_ca.empty()) opts.ca_file = core::JoinPath(ctx.data_dir, ctx.config.tls_ca);
    std::string error;
    auto client = http::Client::Create(url, opts);
    if (!client.ok()) {
      error = client.status().message();
    } else {
      auto resp = (*client)->Do("GET", "/healthz");
      if (!resp.ok()) {
        error = resp.status().message();
      } else if (resp->status != 200) {
        error = "healthz answered HTTP " + std::to_string(resp->status);
      }
    }
    std::int64_t attempts = r.Int(4);
    ctx.db
        ->Transaction([&](catalog::Tx& tx) -> Status {
          std::int64_t t = ctx.NowMs();
          if (error.empty()) {
            // Reachable but silent (a wrong token, a stopped sync loop): check again
            // after the offline period, without counting it as a failed attempt.
            return tx
                .Exec("UPDATE dps SET next_probe_at = ?, probe_error = ? WHERE id = ?",
                      {t + offline_ms, "answers /healthz but does not poll its assignment", id})
                .status();
          }
          std::int64_t n = attempts + 1;
          std::int64_t next = t + core::ToMillis(core::BackoffDelay(
                                      {ctx.config.probe_base, ctx.config.probe_max}, n));
          DEPOT_RETURN_IF_ERROR(tx.Exec("UPDATE dps SET probe_attempts = ?, next_probe_at = ?, "
                                        "probe_error = ? WHERE id = ?",
                                        {n, next, error, id})
                                    .status());
          return PostMessage(
              ctx, tx, core::msg::kDpUnreachable, {{}, {}, name, {}, {}},
              {{"dp", name},
               {"url", url},
               {"error", error},
               {"last_seen", r.IsNull(3) ? "never" : FormatMs(r.Int(3))},
               {"silence", r.IsNull(3) ? "has never polled its assignment"
                                       : "has not polled since " + FormatMs(r.Int(3))}},
              "dp-unreachable:" + std::to_string(id));
        })
        .IgnoreError();
    ctx.Activity();  // a probe's outcome is on the DPs page
    if (!error.empty()) {
      core::Log(core::LogLevel::kWarn, "site.dp_unreachable",
                {{"dp", name}, {"attempt", std::to_string(attempts + 1)}, {"error", error}});
    }
  }
}

}  // namespace depot::site
