#include "site/upward.h"

#include "site/children.h"

namespace depot::site {

using core::Status;

namespace {

constexpr char kSep = '|';  // site paths, uids, DP names and ids never hold it

std::vector<std::string> SplitKey(const std::string& key, std::size_t parts) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (out.size() + 1 < parts) {
    std::size_t bar = key.find(kSep, start);
    if (bar == std::string::npos) break;
    out.push_back(key.substr(start, bar - start));
    start = bar + 1;
  }
  out.push_back(key.substr(start));
  while (out.size() < parts) out.emplace_back();
  return out;
}

Json ParseOr(const std::string& text, Json fallback) {
  Json j = Json::parse(text, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

core::Result<Json> LoadClient(catalog::Tx& tx, const std::string& site, const std::string& uid) {
  catalog::Rows rows;
  if (site.empty()) {
    DEPOT_ASSIGN_OR_RETURN(rows, tx.Query("SELECT uid, name, attributes, enrolled_at, last_seen_at "
                                          "FROM clients WHERE uid = ?",
                                          {uid}));
  } else {
    DEPOT_ASSIGN_OR_RETURN(rows, tx.Query("SELECT uid, name, attributes, enrolled_at, last_seen_at "
                                          "FROM tree_clients WHERE site = ? AND uid = ?",
                                          {site, uid}));
  }
  if (rows.empty()) return Json{{"kind", "client"}, {"uid", uid}, {"gone", true}};
  const auto& r = rows[0];
  return Json{{"kind", "client"},
              {"uid", r.Text(0)},
              {"name", r.Text(1)},
              {"attributes", ParseOr(r.Text(2), Json::object())},
              {"enrolled_at", r.IsNull(3) ? Json() : Json(r.Int(3))},
              {"last_seen_at", r.IsNull(4) ? Json() : Json(r.Int(4))}};
}

core::Result<Json> LoadClientDeployment(catalog::Tx& tx, const std::string& site,
                                        const std::string& uid, std::int64_t deployment) {
  catalog::Rows rows;
  if (site.empty()) {
    DEPOT_ASSIGN_OR_RETURN(
        rows, tx.Query("SELECT d.state, d.version, d.exit_code, d.detail, d.updated_at FROM "
                       "client_deployments d JOIN clients c ON c.id = d.client_id WHERE c.uid = ? "
                       "AND d.deployment_id = ?",
                       {uid, deployment}));
  } else {
    DEPOT_ASSIGN_OR_RETURN(rows,
                           tx.Query("SELECT state, version, exit_code, detail, updated_at FROM "
                                    "tree_client_deployments WHERE site = ? AND client_uid = ? AND "
                                    "deployment_id = ?",
                                    {site, uid, deployment}));
  }
  Json j = {{"kind", "cd"}, {"client", uid}, {"deployment", deployment}};
  if (rows.empty()) {
    j["gone"] = true;
    return j;
  }
  const auto& r = rows[0];
  j["state"] = r.Text(0);
  j["version"] = r.IsNull(1) ? Json() : Json(r.Int(1));
  j["exit_code"] = r.IsNull(2) ? Json() : Json(r.Int(2));
  j["detail"] = r.Text(3);
  j["updated_at"] = r.Int(4);
  return j;
}

// A DP of this site, summarised: its worst record state and its versions.
core::Result<Json> LoadLocalDp(catalog::Tx& tx, const std::string& name) {
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows dp,
                         tx.Query("SELECT id, url, last_seen_at, probe_attempts, probe_error FROM "
                                  "dps WHERE name = ?",
                                  {name}));
  Json j = {{"kind", "dp"}, {"name", name}};
  if (dp.empty()) {
    j["gone"] = true;
    return j;
  }
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows recs,
      tx.Query("SELECT p.name, v.version, r.state FROM dp_records r JOIN versions v ON v.id = "
               "r.version_id JOIN packages p ON p.id = v.package_id WHERE r.dp_id = ? ORDER BY "
               "p.name, v.version",
               {dp[0].Int(0)}));
  Json versions = Json::array();
  int worst = 0;  // 0 ready, 1 behind, 2 failed
  for (const auto& r : recs) {
    versions.push_back({{"package", r.Text(0)}, {"version", r.Int(1)}, {"state", r.Text(2)}});
    const std::string s = r.Text(2);
    worst = std::max(worst, s == "failed" ? 2 : s == "ready" ? 0 : 1);
  }
  std::string state = worst == 2 ? "failed" : worst == 1 ? "behind" : "ready";
  if (dp[0].Int(3) > 0) state = "unreachable";
  j["state"] = state;
  j["detail"] = {{"url", dp[0].Text(1)},
                 {"last_seen_at", dp[0].IsNull(2) ? Json() : Json(dp[0].Int(2))},
                 {"probe_attempts", dp[0].Int(3)},
                 {"probe_error", dp[0].IsNull(4) ? "" : dp[0].Text(4)},
                 {"versions", versions}};
  return j;
}

core::Result<Json> LoadTreeDp(catalog::Tx& tx, const std::string& site, const std::string& name) {
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows rows,
      tx.Query("SELECT state, detail FROM tree_dps WHERE site = ? AND name = ?", {site, name}));
  Json j = {{"kind", "dp"}, {"name", name}};
  if (rows.empty()) {
    j["gone"] = true;
    return j;
  }
  j["state"] = rows[0].Text(0);
  j["detail"] = ParseOr(rows[0].Text(1), Json::object());
  return j;
}

core::Result<Json> LoadMessage(catalog::Tx& tx, std::int64_t id, std::string* site) {
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows rows,
      tx.Query("SELECT code, severity, component, source, at, last_at, count, package, version, "
               "dp, client, deployment, params, text, site, dedup_key FROM messages WHERE id = ?",
               {id}));
  if (rows.empty()) return Json();  // messages are never deleted; nothing to send
  const auto& r = rows[0];
  *site = r.Text(14);
  std::string key = std::to_string(id);
  if (!site->empty()) {
    // "tree|PATH|KEY": the key the origin gave it.
    key = SplitKey(r.Text(15), 3)[2];
  }
  return Json{{"kind", "msg"},
              {"key", key},
              {"code", r.Int(0)},
              {"severity", r.Text(1)},
              {"component", r.Text(2)},
              {"source", r.Text(3)},
              {"at", r.Int(4)},
              {"last_at", r.Int(5)},
              {"count", r.Int(6)},
              {"package", r.IsNull(7) ? Json() : Json(r.Text(7))},
              {"version", r.IsNull(8) ? Json() : Json(r.Int(8))},
              {"dp", r.IsNull(9) ? Json() : Json(r.Text(9))},
              {"client", r.IsNull(10) ? Json() : Json(r.Text(10))},
              {"deployment", r.IsNull(11) ? Json() : Json(r.Int(11))},
              {"params", ParseOr(r.Text(12), Json::object())},
              {"text", r.Text(13)}};
}

core::Result<Json> LoadLink(catalog::Tx& tx, const std::string& site) {
  if (site.empty()) {
    DEPOT_ASSIGN_OR_RETURN(
        catalog::Rows rows,
        tx.Query("SELECT state, state_since, failures, last_contact_at, last_error, "
                 "versions_behind, bytes_behind FROM parent_link WHERE id = 1"));
    if (rows.empty()) return Json();
    const auto& r = rows[0];
    return Json{{"kind", "link"},
                {"link",
                 {{"state", r.Text(0)},
                  {"since", r.IsNull(1) ? Json() : Json(r.Int(1))},
                  {"failures", r.Int(2)},
                  {"last_contact_at", r.IsNull(3) ? Json() : Json(r.Int(3))},
                  {"last_error", r.Text(4)},
                  {"versions_behind", r.Int(5)},
                  {"bytes_behind", r.Int(6)}}}};
  }
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                         tx.Query("SELECT link FROM tree_sites WHERE site = ?", {site}));
  if (rows.empty()) return Json();
  return Json{{"kind", "link"}, {"link", ParseOr(rows[0].Text(0), Json::object())}};
}

// The item for one marked thing ("" site: this site's own), or null when there is
// nothing to send.
core::Result<Json> LoadItem(catalog::Tx& tx, const std::string& kind, const std::string& key) {
  const bool tree = !kind.empty() && kind[0] == 't';
  std::string site;
  std::string rest = key;
  if (tree) {
    auto parts = SplitKey(key, 2);
    site = parts[0];
    rest = parts[1];
  }
  const std::string base = tree ? kind.substr(1) : kind;
  Json item;
  if (base == "client") {
    DEPOT_ASSIGN_OR_RETURN(item, LoadClient(tx, site, rest));
  } else if (base == "cd") {
    auto parts = SplitKey(rest, 2);
    DEPOT_ASSIGN_OR_RETURN(
        item, LoadClientDeployment(tx, site, parts[0], catalog::Value(parts[1]).AsInt()));
  } else if (base == "dp") {
    if (tree) {
      DEPOT_ASSIGN_OR_RETURN(item, LoadTreeDp(tx, site, rest));
    } else {
      DEPOT_ASSIGN_OR_RETURN(item, LoadLocalDp(tx, rest));
    }
  } else if (base == "msg") {
    DEPOT_ASSIGN_OR_RETURN(item, LoadMessage(tx, catalog::Value(rest).AsInt(), &site));
  } else if (base == "link") {
    DEPOT_ASSIGN_OR_RETURN(item, LoadLink(tx, tree ? site : ""));
  }
  if (item.is_null()) return item;
  item["site"] = site;
  return item;
}

}  // namespace

std::string ClientDeploymentKey(const std::string& client_uid, std::int64_t deployment) {
  return client_uid + kSep + std::to_string(deployment);
}

std::string TreeKey(const std::string& site, const std::string& rest) { return site + kSep + rest; }

Status MarkUp(SiteContext& ctx, catalog::Tx& tx, std::string_view kind, const std::string& key) {
  if (!ctx.config.is_child()) return Status::Ok();
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows seq,
      tx.Query("UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = "
               "'up_seq' RETURNING value"));
  if (seq.empty()) return Status::IOError("internal: the up_seq counter is missing");
  std::int64_t n = catalog::Value(seq[0].Text(0)).AsInt();
  return tx
      .Exec(
          "INSERT INTO up_dirty (kind, key, seq) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO "
          "UPDATE SET seq = excluded.seq",
          {std::string(kind), key, n})
      .status();
}

core::Result<UpBatch> BuildUpBatch(SiteContext& ctx, std::size_t max_items) {
  UpBatch batch;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    batch = UpBatch();
    DEPOT_ASSIGN_OR_RETURN(batch.pending, tx.QueryInt("SELECT COUNT(*) FROM up_dirty"));
    DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                           tx.Query("SELECT kind, key, seq FROM up_dirty ORDER BY seq LIMIT ?",
                                    {static_cast<std::int64_t>(max_items)}));
    std::size_t bytes = 0;
    for (const auto& r : rows) {
      if (bytes > kMaxUpBatchBytes) break;  // the rest goes in the next batch
      DEPOT_ASSIGN_OR_RETURN(Json item, LoadItem(tx, r.Text(0), r.Text(1)));
      batch.last_seq = std::max(batch.last_seq, r.Int(2));
      if (item.is_null()) continue;
      item["seq"] = r.Int(2);
      bytes += Dump(item).size();
      batch.items.push_back(std::move(item));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return batch;
}

Status AckUp(SiteContext& ctx, std::int64_t acked) {
  return ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_RETURN_IF_ERROR(tx.Exec("DELETE FROM up_dirty WHERE seq <= ?", {acked}).status());
    return tx
        .Exec("UPDATE parent_link SET acked_seq = ? WHERE id = 1 AND acked_seq < ?", {acked, acked})
        .status();
  });
}

}  // namespace depot::site
