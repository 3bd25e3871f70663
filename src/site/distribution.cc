#include "site/distribution.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/messages.h"
#include "core/net.h"
#include "core/random.h"
#include "core/sha256.h"
#include "site/api.h"
#include "site/auth.h"
#include "site/link_schedule.h"
#include "site/messages.h"
#include "store/manifest.h"

namespace depot::site {

using core::Status;

namespace {

Status ValidateDpName(const std::string& name) {
  // DP names share the package-name alphabet: they appear in URLs and messages.
  return store::ValidatePackageName(name).ok()
             ? Status::Ok()
             : Status::InvalidArgument("DP name `" + name.substr(0, 80) +
                                       "` must be 1-64 characters of A-Z a-z 0-9 . _ -");
}

Status ValidateUrl(const std::string& url) {
  if ((url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) || url.size() > 2048 ||
      url.find_first_of(" \t\r\n\"'<>\\") != std::string::npos) {
    return Status::InvalidArgument("DP url `" + url.substr(0, 120) +
                                   "` must be an http:// or https:// URL, e.g. http://dp1:8081");
  }
  return Status::Ok();
}

// The DPs a package is assigned to, directly or through a group.
const char* kTargetedDps =
    "SELECT d.id FROM dps d WHERE EXISTS (SELECT 1 FROM distributions x WHERE x.package_id = ? "
    "AND ((x.target_kind = 'dp' AND x.target = d.name) OR (x.target_kind = 'group' AND "
    "x.target IN (SELECT g.name FROM dp_groups g WHERE g.dp_id = d.id))))";

}  // namespace

std::string DpName(SiteContext& ctx, std::int64_t dp_id) {
  auto row = ctx.db->QueryRow("SELECT name FROM dps WHERE id = ?", {dp_id});
  return row.ok() ? row->Text(0) : std::string();
}

Status SyncRecords(SiteContext& ctx, catalog::Tx& tx, std::int64_t package_id) {
  std::int64_t now = ctx.NowMs();
  DEPOT_RETURN_IF_ERROR(
      tx.Exec(std::string("INSERT INTO dp_records (version_id, dp_id, state, created_at, "
                          "updated_at) SELECT v.id, t.id, 'pending', ?, ? FROM versions v, (") +
                  kTargetedDps +
                  ") t WHERE v.package_id = ? AND v.state = 'active' ON CONFLICT (version_id, "
                  "dp_id) DO NOTHING",
              {now, now, package_id, package_id})
          .status());
  return tx
      .Exec(std::string("DELETE FROM dp_records WHERE version_id IN (SELECT id FROM versions "
                        "WHERE package_id = ?) AND (dp_id NOT IN (") +
                kTargetedDps +
                ") OR version_id NOT IN (SELECT id FROM versions WHERE package_id = ? AND state "
                "= 'active'))",
            {package_id, package_id, package_id})
      .status();
}

Status DeleteRecordsOfVersion(SiteContext&, catalog::Tx& tx, std::int64_t version_id) {
  return tx.Exec("DELETE FROM dp_records WHERE version_id = ?", {version_id}).status();
}

core::Result<Json> AddDp(SiteContext& ctx, const Json& body) {
  ObjectReader r(body, "new DP");
  std::string name = r.String("name", true, 64);
  std::string url = r.String("url", true, 2048);
  std::vector<std::string> groups = r.Strings("groups", false, 64, 64);
  std::vector<std::string> boundaries = r.Strings("boundaries", false, 256, 64);
  DEPOT_ASSIGN_OR_RETURN(LinkSchedule sched, ReadLinkSchedule(r, [&] { return r.Finish(); }));
  DEPOT_RETURN_IF_ERROR(ValidateDpName(name));
  DEPOT_RETURN_IF_ERROR(ValidateUrl(url));
  while (!url.empty() && url.back() == '/') url.pop_back();
  for (const auto& g : groups) {
    if (!store::ValidatePackageName(g).ok()) {
      return Status::InvalidArgument("group name `" + g.substr(0, 80) +
                                     "` must be 1-64 characters of A-Z a-z 0-9 . _ -");
    }
  }
  std::vector<std::string> cidrs;
  for (const auto& b : boundaries) {
    DEPOT_ASSIGN_OR_RETURN(core::Cidr c, core::ParseCidr(b));
    cidrs.push_back(c.text);
  }
  NewToken token;
  std::int64_t dp_id = 0;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t exists,
                           tx.QueryInt("SELECT COUNT(*) FROM dps WHERE name = ?", {name}));
    if (exists > 0) return Status::InvalidArgument("a DP named " + name + " already exists");
    DEPOT_ASSIGN_OR_RETURN(dp_id, tx.QueryInt("INSERT INTO dps (name, url, created_at) VALUES "
                                              "(?, ?, ?) RETURNING id",
                                              {name, url, ctx.NowMs()}));
    DEPOT_RETURN_IF_ERROR(StoreLinkSchedule(tx, "dps", dp_id, sched));
    for (const auto& g : std::set<std::string>(groups.begin(), groups.end())) {
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("INSERT INTO dp_groups (dp_id, name) VALUES (?, ?)", {dp_id, g}).status());
    }
    for (const auto& c : std::set<std::string>(cidrs.begin(), cidrs.end())) {
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("INSERT INTO dp_boundaries (dp_id, cidr) VALUES (?, ?)", {dp_id, c}).status());
    }
    DEPOT_ASSIGN_OR_RETURN(token,
                           CreateToken(ctx, tx, Role::kDp, "dp " + name, dp_id, 0, std::nullopt));
    // Packages already distributed to its groups come to it now.
    DEPOT_ASSIGN_OR_RETURN(catalog::Rows pkgs,
                           tx.Query("SELECT DISTINCT x.package_id FROM distributions x JOIN "
                                    "dp_groups g ON x.target_kind = 'group' AND x.target = g.name "
                                    "WHERE g.dp_id = ?",
                                    {dp_id}));
    for (const auto& p : pkgs) DEPOT_RETURN_IF_ERROR(SyncRecords(ctx, tx, p.Int(0)));
    return PostMessage(ctx, tx, core::msg::kDpAdded, {{}, {}, name, {}, {}},
                       {{"dp", name}, {"url", url}});
  });
  if (!s.ok()) return s;
  ctx.Changed();
  return Json{{"name", name},
              {"url", url},
              {"token", token.secret},
              {"groups", groups},
              {"boundaries", cidrs},
              {"schedule", LinkScheduleJson(sched.max_rate.value_or(0),
                                            Dump(sched.windows.value_or(Json::array())))}};
}

core::Result<std::int64_t> DpId(catalog::Tx& tx, const std::string& name) {
  auto row = tx.QueryRow("SELECT id FROM dps WHERE name = ?", {name});
  if (!row.ok()) {
    if (row.status().IsNotFound())
      return Status::NotFound("no DP named " + name + " (see `depot dp list`)");
    return row.status();
  }
  return row->Int(0);
}

core::Result<Json> RemoveDp(SiteContext& ctx, const std::string& name) {
  std::int64_t records = 0;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t id, DpId(tx, name));
    DEPOT_ASSIGN_OR_RETURN(records,
                           tx.QueryInt("SELECT COUNT(*) FROM dp_records WHERE dp_id = ?", {id}));
    // Its records, groups and boundaries go with it (ON DELETE CASCADE): every retry,
    // probe and policy mention of this DP ends with this commit.
    DEPOT_RETURN_IF_ERROR(RevokeSubjectTokens(ctx, tx, Role::kDp, id));
    DEPOT_RETURN_IF_ERROR(tx.Exec("DELETE FROM dps WHERE id = ?", {id}).status());
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("DELETE FROM distributions WHERE target_kind = 'dp' AND target = ?", {name})
            .status());
    return PostMessage(ctx, tx, core::msg::kDpRemoved, {{}, {}, name, {}, {}}, {{"dp", name}});
  });
  if (!s.ok()) return s;
  ForgetCachedTokens(ctx);
  ctx.Changed();
  return Json{{"name", name}, {"records_cancelled", records}};
}

namespace {

Json DpSummary(const catalog::Row& r) {
  Json j = {{"name", r.Text(1)},
            {"url", r.Text(2)},
            {"created", FormatMs(r.Int(3))},
            {"last_seen", r.IsNull(4) ? "" : FormatMs(r.Int(4))},
            {"probe_attempts", r.Int(5)},
            {"reachable", r.Int(5) == 0},
            {"schedule", LinkScheduleJson(r.Int(7), r.Text(8))}};
  if (!r.IsNull(6)) j["probe_error"] = r.Text(6);
  return j;
}

constexpr const char* kDpColumns =
    "SELECT id, name, url, created_at, last_seen_at, probe_attempts, probe_error, max_rate, "
    "windows FROM dps";

}  // namespace

core::Result<Json> ListDps(SiteContext& ctx) {
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                         ctx.db->Query(std::string(kDpColumns) + " ORDER BY name"));
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows groups,
                         ctx.db->Query("SELECT dp_id, name FROM dp_groups ORDER BY name"));
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows counts,
      ctx.db->Query("SELECT dp_id, state, COUNT(*) FROM dp_records GROUP BY dp_id, state"));
  Json out = Json::array();
  for (const auto& r : rows) {
    Json j = DpSummary(r);
    Json g = Json::array();
    for (const auto& gr : groups) {
      if (gr.Int(0) == r.Int(0)) g.push_back(gr.Text(1));
    }
    j["groups"] = g;
    Json states = {{"pending", 0}, {"syncing", 0}, {"ready", 0}, {"failed", 0}, {"verifying", 0}};
    for (const auto& c : counts) {
      if (c.Int(0) == r.Int(0)) states[c.Text(1)] = c.Int(2);
    }
    j["versions"] = states;
    out.push_back(std::move(j));
  }
  return Json{{"dps", out}};
}

core::Result<Json> DpsNotReady(SiteContext& ctx) {
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows dps,
                         ctx.db->Query("SELECT id, name, created_at, last_seen_at, probe_attempts, "
                                       "probe_error FROM dps ORDER BY name"));
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows recs,
      ctx.db->Query("SELECT r.dp_id, p.name, v.version, r.state, COALESCE(r.state_since, "
                    "r.updated_at), r.last_error, "
                    "r.verify_reason FROM dp_records r JOIN versions v ON v.id = r.version_id JOIN "
                    "packages p ON p.id = "
                    "v.package_id WHERE r.state != 'ready' ORDER BY r.dp_id, p.name, v.version"));
  // Worst first: what an operator must act on before what will resolve itself.
  auto rank = [](const std::string& s) {
    return s == "unreachable" ? 0 : s == "failed" ? 1 : s == "withheld" ? 2 : 3;
  };
  Json out = Json::array();
  for (const auto& d : dps) {
    Json item = {{"name", d.Text(1)}};
    Json versions = Json::array();
    std::string state, detail;
    std::int64_t since = 0;
    for (const auto& r : recs) {
      if (r.Int(0) != d.Int(0)) continue;
      std::string s = r.Text(3) == "failed"      ? "failed"
                      : r.Text(3) == "verifying" ? "withheld"
                                                 : "behind";
      if (state.empty() || rank(s) < rank(state)) {
        state = s;
        detail = !r.IsNull(5) ? r.Text(5) : !r.IsNull(6) ? r.Text(6) : std::string();
      }
      if (since == 0 || r.Int(4) < since) since = r.Int(4);
      if (versions.size() < 20)
        versions.push_back({{"package", r.Text(1)}, {"version", r.Int(2)}, {"state", r.Text(3)}});
    }
    if (d.Int(4) > 0) {
      state = "unreachable";
      since = d.IsNull(3) ? d.Int(2) : d.Int(3);
      detail = d.Text(5);
    }
    if (state.empty()) continue;
    item["state"] = state;
    item["since"] = FormatMs(since);
    item["detail"] = detail;
    item["versions"] = versions;
    out.push_back(std::move(item));
  }
  std::stable_sort(out.begin(), out.end(), [&](const Json& a, const Json& b) {
    return rank(a["state"].get<std::string>()) < rank(b["state"].get<std::string>());
  });
  return out;
}

core::Result<Json> ShowDp(SiteContext& ctx, const std::string& name) {
  auto row = ctx.db->QueryRow(std::string(kDpColumns) + " WHERE name = ?", {name});
  if (!row.ok()) {
    if (row.status().IsNotFound())
      return Status::NotFound("no DP named " + name + " (see `depot dp list`)");
    return row.status();
  }
  std::int64_t id = row->Int(0);
  Json j = DpSummary(*row);
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows groups,
      ctx.db->Query("SELECT name FROM dp_groups WHERE dp_id = ? ORDER BY name", {id}));
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows bounds,
      ctx.db->Query("SELECT cidr FROM dp_boundaries WHERE dp_id = ? ORDER BY cidr", {id}));
  Json g = Json::array(), b = Json::array();
  for (const auto& x : groups) g.push_back(x.Text(0));
  for (const auto& x : bounds) b.push_back(x.Text(0));
  j["groups"] = g;
  j["boundaries"] = b;
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows recs,
      ctx.db->Query(
          "SELECT p.name, v.version, r.state, r.attempts, r.next_retry_at, r.last_error, "
          "r.bytes_done, r.bytes_total, r.updated_at, COALESCE(r.state_since, r.updated_at), "
          "r.verify_reason FROM dp_records r JOIN versions v "
          "ON v.id = r.version_id JOIN packages p ON p.id = v.package_id WHERE r.dp_id "
          "= ? ORDER BY p.name, v.version",
          {id}));
  Json versions = Json::array();
  for (const auto& r : recs) {
    Json v = {{"package", r.Text(0)},         {"version", r.Int(1)},    {"state", r.Text(2)},
              {"attempts", r.Int(3)},         {"bytes_done", r.Int(6)}, {"bytes_total", r.Int(7)},
              {"updated", FormatMs(r.Int(8))}};
    if (!r.IsNull(4)) v["next_retry"] = FormatMs(r.Int(4));
    if (!r.IsNull(5)) v["last_error"] = r.Text(5);
    v["since"] = FormatMs(r.Int(9));
    if (!r.IsNull(10)) v["withheld_because"] = r.Text(10);
    versions.push_back(std::move(v));
  }
  j["versions"] = versions;
  return j;
}

namespace {

// Assigns the package to one target (or removes it), named `dp:NAME`, `group:NAME` or
// NAME (a DP, else a group); returns the target as `kind:name`.
core::Result<std::string> ApplyTarget(SiteContext& ctx, catalog::Tx& tx, const std::string& package,
                                      std::int64_t package_id, const std::string& t, bool remove) {
  std::string kind, name;
  if (t.rfind("dp:", 0) == 0) {
    kind = "dp";
    name = t.substr(3);
  } else if (t.rfind("group:", 0) == 0) {
    kind = "group";
    name = t.substr(6);
  } else if (t.rfind("child:", 0) == 0) {
    // A child site pulls the package's versions (docs/hierarchy.md); no records here.
    kind = "child";
    name = t.substr(6);
    DEPOT_ASSIGN_OR_RETURN(std::int64_t is_child,
                           tx.QueryInt("SELECT COUNT(*) FROM children WHERE code = ?", {name}));
    if (is_child == 0 && !remove)
      return Status::NotFound("no child site " + name + " (add it with `depot child add " + name +
                              "`)");
  } else {
    name = t;
  }
  DEPOT_ASSIGN_OR_RETURN(std::int64_t is_dp,
                         tx.QueryInt("SELECT COUNT(*) FROM dps WHERE name = ?", {name}));
  DEPOT_ASSIGN_OR_RETURN(std::int64_t is_group,
                         tx.QueryInt("SELECT COUNT(*) FROM dp_groups WHERE name = ?", {name}));
  if (kind.empty()) {
    if (is_dp > 0) {
      kind = "dp";
    } else if (is_group > 0) {
      kind = "group";
    } else if (!remove) {
      return Status::NotFound("no DP or DP group named " + name + " (use group:" + name +
                              " to assign to a group before it has DPs)");
    } else {
      kind = "dp";
    }
  }
  if (kind == "dp" && is_dp == 0 && !remove) return Status::NotFound("no DP named " + name);
  if (kind != "child" && !store::ValidatePackageName(name).ok()) {
    return Status::InvalidArgument("`" + name.substr(0, 80) + "` is not a valid DP or group name");
  }
  std::string target = kind + ":" + name;
  if (remove) {
    DEPOT_ASSIGN_OR_RETURN(
        std::int64_t n,
        tx.Exec("DELETE FROM distributions WHERE package_id = ? AND target_kind = ? AND target = ?",
                {package_id, kind, name}));
    if (n == 0) return Status::NotFound("package " + package + " is not assigned to " + target);
    DEPOT_RETURN_IF_ERROR(PostMessage(ctx, tx, core::msg::kUnassigned,
                                      {package, {}, kind == "dp" ? name : "", {}, {}},
                                      {{"package", package}, {"target", target}}));
  } else {
    DEPOT_ASSIGN_OR_RETURN(
        std::int64_t n,
        tx.Exec("INSERT INTO distributions (package_id, target_kind, target, created_at) VALUES "
                "(?, ?, ?, ?) ON CONFLICT (package_id, target_kind, target) DO NOTHING",
                {package_id, kind, name, ctx.NowMs()}));
    if (n > 0) {
      DEPOT_RETURN_IF_ERROR(PostMessage(ctx, tx, core::msg::kAssigned,
                                        {package, {}, kind == "dp" ? name : "", {}, {}},
                                        {{"package", package}, {"target", target}}));
    }
  }
  return target;
}

}  // namespace

core::Result<Json> Distribute(SiteContext& ctx, const Json& body) {
  ObjectReader r(body, "distribution");
  std::string package = r.String("package", true, 64);
  std::vector<std::string> to = r.Strings("to", true, 256, 80);
  bool remove = r.Bool("remove", false);
  DEPOT_RETURN_IF_ERROR(r.Finish());
  if (to.empty()) return Status::InvalidArgument("distribution: name at least one DP or group");
  Json changed = Json::array();
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    changed = Json::array();
    auto pkg =
        tx.QueryRow("SELECT id FROM packages WHERE name = ? AND deleted_at IS NULL", {package});
    if (!pkg.ok()) {
      if (pkg.status().IsNotFound()) return Status::NotFound("no package named " + package);
      return pkg.status();
    }
    std::int64_t package_id = pkg->Int(0);
    for (const std::string& t : to) {
      DEPOT_ASSIGN_OR_RETURN(std::string target,
                             ApplyTarget(ctx, tx, package, package_id, t, remove));
      changed.push_back(target);
    }
    return SyncRecords(ctx, tx, package_id);
  });
  if (!s.ok()) return s;
  ctx.Changed();
  return Json{{"package", package}, {remove ? "removed" : "assigned", changed}};
}

core::Result<Json> VersionCoverage(SiteContext& ctx, std::int64_t version_id) {
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows rows,
      ctx.db->Query(
          "SELECT d.name, r.state, r.attempts, r.bytes_done, r.bytes_total, r.last_error "
          "FROM dp_records r JOIN dps d ON d.id = r.dp_id WHERE r.version_id = ? ORDER BY d.name",
          {version_id}));
  Json out = Json::array();
  for (const auto& r : rows) {
    Json j = {{"dp", r.Text(0)},
              {"state", r.Text(1)},
              {"attempts", r.Int(2)},
              {"bytes_done", r.Int(3)},
              {"bytes_total", r.Int(4)}};
    if (!r.IsNull(5)) j["last_error"] = r.Text(5);
    out.push_back(std::move(j));
  }
  return out;
}

core::Result<Json> DistributionTargets(SiteContext& ctx, std::int64_t package_id) {
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                         ctx.db->Query("SELECT target_kind, target FROM distributions WHERE "
                                       "package_id = ? ORDER BY target_kind, target",
                                       {package_id}));
  Json out = Json::array();
  for (const auto& r : rows) out.push_back({{"kind", r.Text(0)}, {"name", r.Text(1)}});
  return out;
}

namespace {

core::Result<Json> Assignment(SiteContext& ctx, std::int64_t dp_id) {
  DEPOT_ASSIGN_OR_RETURN(
      auto dp, ctx.db->QueryRow("SELECT name, max_rate, windows FROM dps WHERE id = ?", {dp_id}));
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows rows,
      ctx.db->Query("SELECT p.name, p.uid, v.version, v.manifest_id, v.manifest_bytes, v.bytes, "
                    "r.state, r.attempts, r.next_retry_at, r.verify_seq, r.verify_chunks FROM "
                    "dp_records r JOIN "
                    "versions v ON "
                    "v.id = r.version_id JOIN packages p ON p.id = v.package_id WHERE r.dp_id = ? "
                    "ORDER BY p.name, v.version",
                    {dp_id}));
  Json versions = Json::array();
  for (const auto& r : rows) {
    Json v = {{"package", r.Text(0)},
              {"package_id", r.Text(1)},
              {"version", r.Int(2)},
              {"manifest_id", r.Text(3)},
              {"manifest_bytes", r.Int(4)},
              {"bytes", r.Int(5)},
              {"target", repo::ManifestTargetPath(r.Text(0), r.Int(2))},
              {"state", r.Text(6)},
              {"attempts", r.Int(7)}};
    // A failed version (or a failed re-verification) is retried no earlier than this
    // (its own backoff).
    if ((r.Text(6) == "failed" || r.Text(6) == "verifying") && !r.IsNull(8))
      v["retry_at_ms"] = r.Int(8);
    // An agent found this copy stale or bad: re-verify it (these chunks first), repair
    // it, and answer with a ready report that names `seq` (docs/api.md).
    if (r.Text(6) == "verifying") {
      Json chunks = Json::parse(r.Text(10), nullptr, false);
      v["verify"] = {{"seq", r.Int(9)}, {"chunks", chunks.is_array() ? chunks : Json::array()}};
    }
    versions.push_back(std::move(v));
  }
  Json body = {{"dp", dp.Text(0)},
               {"versions", versions},
               {"schedule", LinkScheduleJson(dp.Int(1), dp.Text(2))}};
  body["etag"] = ContentEtag(body);
  body["revision"] = ctx.revision.load();
  return body;
}

}  // namespace

void HandleAssignment(SiteContext& ctx, std::int64_t dp_id, http::Request& req,
                      http::Response* resp) {
  // Read the topic sequence before the state, so no change can slip in between.
  std::uint64_t seq = ctx.server != nullptr ? ctx.server->Sequence("assignments") : 0;
  // Only the DP's own request is a sign of life: a poll the site has parked is called
  // again on every change and at its timeout, also while the DP is stopped or gone.
  if (req.poll_round == 0) SeenDp(ctx, dp_id);
  auto a = Assignment(ctx, dp_id);
  if (!a.ok()) {
    *resp = ErrorResponse(a.status());
    return;
  }
  AnswerLongPoll(ctx, req, seq, *a, resp);
}

}  // namespace depot::site
