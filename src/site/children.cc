#include "site/children.h"

#include <algorithm>

#include "core/messages.h"
#include "site/api.h"
#include "site/auth.h"
#include "site/config.h"
#include "site/deployments.h"
#include "site/link_schedule.h"
#include "site/messages.h"

namespace depot::site {

using core::Status;

const char* LinkHealth(std::int64_t failures) {
  if (failures >= kLinkFailedAfter) return "failed";
  if (failures >= kLinkDegradedAfter) return "degraded";
  return "active";
}

namespace {

core::Result<std::int64_t> ChildId(catalog::Tx& tx, const std::string& code) {
  auto row = tx.QueryRow("SELECT id FROM children WHERE code = ?", {code});
  if (!row.ok()) {
    if (row.status().IsNotFound())
      return Status::NotFound("no child site " + code + " (see `depot child list`)");
    return row.status();
  }
  return row->Int(0);
}

// The schedule and `all_packages` of an add or change request, checked.
struct Schedule {
  LinkSchedule link;
  std::optional<bool> all_packages;
};

core::Result<Schedule> ReadSchedule(ObjectReader& r) {
  Schedule s;
  const Json* all = r.Raw("all_packages");
  DEPOT_ASSIGN_OR_RETURN(s.link, ReadLinkSchedule(r, [&] { return r.Finish(); }));
  if (all != nullptr) {
    if (!all->is_boolean()) return Status::InvalidArgument("all_packages must be true or false");
    s.all_packages = all->get<bool>();
  }
  return s;
}

Json ChildJson(const catalog::Row& r, std::int64_t now) {
  // id, code, all_packages, max_rate, windows, created_at, last_feed_at,
  // last_report_at, up_seq, link, health, health_since
  Json link = Json::parse(r.Text(9), nullptr, false);
  if (link.is_discarded()) link = Json::object();
  Json windows = Json::parse(r.Text(4), nullptr, false);
  Json j = {{"code", r.Text(1)},
            {"all_packages", r.Int(2) != 0},
            {"max_rate", r.Int(3)},
            {"windows", windows.is_discarded() ? Json::array() : windows},
            {"created", FormatMs(r.Int(5))},
            {"last_feed", r.IsNull(6) ? "" : FormatMs(r.Int(6))},
            {"last_report", r.IsNull(7) ? "" : FormatMs(r.Int(7))},
            {"reports_applied", r.Int(8)},
            {"health", r.Text(10)},
            {"health_since", r.IsNull(11) ? "" : FormatMs(r.Int(11))},
            {"link", link}};
  std::int64_t last = std::max(r.IsNull(6) ? 0 : r.Int(6), r.IsNull(7) ? 0 : r.Int(7));
  j["silent_s"] = last == 0 ? -1 : std::max<std::int64_t>(0, (now - last) / 1000);
  return j;
}

constexpr char kChildColumns[] =
    "id, code, all_packages, max_rate, windows, created_at, last_feed_at, last_report_at, up_seq, "
    "link, health, health_since";

}  // namespace

void AddLinkMetrics(SiteContext& ctx) {
  SiteContext* raw = &ctx;
  using Emit = core::Registry::Emit;
  ctx.metrics.AddCollector(
      "depot_site_child_link_up", "1 for each child link's health state (active, degraded, failed)",
      [raw](const Emit& emit) {
        auto rows = raw->db->Query("SELECT code, health FROM children ORDER BY code");
        if (!rows.ok()) return;
        for (const auto& r : *rows) emit({{"child", r.Text(0)}, {"state", r.Text(1)}}, 1);
      });
  ctx.metrics.AddCollector(
      "depot_site_child_silence_seconds", "Seconds since each child's last feed poll",
      [raw](const Emit& emit) {
        auto rows = raw->db->Query("SELECT code, COALESCE(last_feed_at, created_at) FROM children");
        if (!rows.ok()) return;
        for (const auto& r : *rows)
          emit({{"child", r.Text(0)}}, static_cast<double>(raw->NowMs() - r.Int(1)) / 1000.0);
      });
  ctx.metrics.AddCollector(
      "depot_site_parent_link", "The link to the parent: failures, versions_behind, bytes_behind",
      [raw](const Emit& emit) {
        auto rows = raw->db->Query(
            "SELECT state, failures, versions_behind, bytes_behind FROM parent_link WHERE id = 1");
        if (!rows.ok() || rows->empty()) return;
        const auto& r = (*rows)[0];
        emit({{"value", "failures"}, {"state", r.Text(0)}}, static_cast<double>(r.Int(1)));
        emit({{"value", "versions_behind"}, {"state", r.Text(0)}}, static_cast<double>(r.Int(2)));
        emit({{"value", "bytes_behind"}, {"state", r.Text(0)}}, static_cast<double>(r.Int(3)));
      });
  ctx.metrics.AddCollector(
      "depot_site_dp_probe_attempts",
      "Failed probes of each DP that stopped polling (0: reachable)", [raw](const Emit& emit) {
        auto rows = raw->db->Query("SELECT name, probe_attempts FROM dps ORDER BY name");
        if (!rows.ok()) return;
        for (const auto& r : *rows) emit({{"dp", r.Text(0)}}, static_cast<double>(r.Int(1)));
      });
}

core::Result<Json> AddChild(SiteContext& ctx, const Json& body) {
  ObjectReader r(body, "new child site");
  std::string code = r.String("code", true, 16);
  DEPOT_ASSIGN_OR_RETURN(Schedule sched, ReadSchedule(r));
  DEPOT_RETURN_IF_ERROR(ValidateSiteCode(code).WithContext("child site code"));
  if (code == ctx.config.code)
    return Status::InvalidArgument("a child site cannot have this site's own code " + code);
  NewToken token;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t exists,
                           tx.QueryInt("SELECT COUNT(*) FROM children WHERE code = ?", {code}));
    if (exists > 0)
      return Status::InvalidArgument("a child site " + code +
                                     " already exists (remove it first to issue a new token)");
    DEPOT_ASSIGN_OR_RETURN(
        std::int64_t id,
        tx.QueryInt(
            "INSERT INTO children (code, all_packages, max_rate, windows, created_at, "
            "health_since) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            {code, sched.all_packages.value_or(false) ? 1 : 0, sched.link.max_rate.value_or(0),
             Dump(sched.link.windows.value_or(Json::array())), ctx.NowMs(), ctx.NowMs()}));
    DEPOT_ASSIGN_OR_RETURN(
        token, CreateToken(ctx, tx, Role::kChild, "child site " + code, id, 0, std::nullopt));
    return PostMessage(ctx, tx, core::msg::kChildAdded, {}, {{"child", code}});
  });
  if (!s.ok()) return s;
  ctx.Changed();
  return Json{{"code", code}, {"token", token.secret}};
}

core::Result<Json> ListChildren(SiteContext& ctx) {
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows, ctx.db->Query(std::string("SELECT ") + kChildColumns +
                                                           " FROM children ORDER BY code"));
  Json out = Json::array();
  for (const auto& r : rows) out.push_back(ChildJson(r, ctx.NowMs()));
  return Json{{"children", out}};
}

core::Result<Json> ShowChild(SiteContext& ctx, const std::string& code) {
  auto row = ctx.db->QueryRow(
      std::string("SELECT ") + kChildColumns + " FROM children WHERE code = ?", {code});
  if (!row.ok()) {
    if (row.status().IsNotFound())
      return Status::NotFound("no child site " + code + " (see `depot child list`)");
    return row.status();
  }
  Json j = ChildJson(*row, ctx.NowMs());
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows pkgs,
                         ctx.db->Query("SELECT p.name FROM distributions x JOIN packages p ON p.id "
                                       "= x.package_id WHERE x.target_kind = 'child' AND "
                                       "x.target = ? AND p.deleted_at IS NULL ORDER BY p.name",
                                       {code}));
  Json names = Json::array();
  for (const auto& p : pkgs) names.push_back(p.Text(0));
  j["packages"] = names;
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows sites,
                         ctx.db->Query("SELECT site, link FROM tree_sites WHERE site = ? OR site "
                                       "LIKE ? ORDER BY site",
                                       {code, code + "/%"}));
  Json subtree = Json::array();
  for (const auto& s : sites) {
    Json link = Json::parse(s.Text(1), nullptr, false);
    subtree.push_back({{"site", s.Text(0)}, {"link", link.is_discarded() ? Json() : link}});
  }
  j["subtree"] = subtree;
  return j;
}

core::Result<Json> ChangeChild(SiteContext& ctx, const std::string& code, const Json& body) {
  ObjectReader r(body, "child site change");
  DEPOT_ASSIGN_OR_RETURN(Schedule sched, ReadSchedule(r));
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t id, ChildId(tx, code));
    DEPOT_RETURN_IF_ERROR(StoreLinkSchedule(tx, "children", id, sched.link));
    if (sched.all_packages) {
      DEPOT_RETURN_IF_ERROR(tx.Exec("UPDATE children SET all_packages = ? WHERE id = ?",
                                    {*sched.all_packages ? 1 : 0, id})
                                .status());
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  ctx.Changed();  // the feed carries the schedule: parked polls answer now
  return ShowChild(ctx, code);
}

core::Result<Json> RemoveChild(SiteContext& ctx, const std::string& code) {
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t id, ChildId(tx, code));
    DEPOT_RETURN_IF_ERROR(RevokeSubjectTokens(ctx, tx, Role::kChild, id));
    DEPOT_RETURN_IF_ERROR(tx.Exec("DELETE FROM distributions WHERE target_kind = 'child' AND "
                                  "target = ?",
                                  {code})
                              .status());
    const std::string like = code + "/%";
    for (const char* table :
         {"tree_sites", "tree_clients", "tree_client_deployments", "tree_dps"}) {
      DEPOT_RETURN_IF_ERROR(
          tx.Exec(std::string("DELETE FROM ") + table + " WHERE site = ? OR site LIKE ?",
                  {code, like})
              .status());
    }
    DEPOT_RETURN_IF_ERROR(tx.Exec("DELETE FROM children WHERE id = ?", {id}).status());
    return PostMessage(ctx, tx, core::msg::kChildRemoved, {}, {{"child", code}});
  });
  if (!s.ok()) return s;
  ForgetCachedTokens(ctx);
  ctx.Changed();
  return Json{{"code", code}, {"removed", true}};
}

core::Result<Json> ChildTrust(SiteContext& ctx) {
  const auto& ch = ctx.repo->settings().chunker;
  std::lock_guard<std::mutex> lock(ctx.root_mu);
  return Json{{"trusted_root", ctx.trusted_root},
              {"site", ctx.config.code},
              {"chunker", {{"min", ch.min_size}, {"avg", ch.avg_size}, {"max", ch.max_size}}},
              {"compression_level", ctx.repo->settings().compression_level}};
}

namespace {

// The packages child `code` pulls (`all`: every one), with their active versions.
core::Result<Json> FeedPackages(catalog::Tx& tx, bool all, const std::string& code,
                                std::vector<std::int64_t>* package_ids) {
  const std::string sql =
      "SELECT p.id, p.uid, p.name, p.description, p.created_at FROM packages p WHERE "
      "p.deleted_at IS NULL AND (? = 1 OR EXISTS (SELECT 1 FROM distributions x WHERE "
      "x.package_id = p.id AND x.target_kind = 'child' AND x.target = ?)) ORDER BY p.id";
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows pkgs, tx.Query(sql, {all ? 1 : 0, code}));
  Json out = Json::array();
  for (const auto& p : pkgs) {
    DEPOT_ASSIGN_OR_RETURN(
        catalog::Rows vs,
        tx.Query("SELECT id, version, manifest_id, manifest_bytes, files, bytes, chunks, "
                 "programs, created_at FROM versions WHERE package_id = ? AND state = 'active' "
                 "ORDER BY version",
                 {p.Int(0)}));
    Json versions = Json::array();
    for (const auto& v : vs) {
      Json programs = Json::parse(v.Text(7), nullptr, false);
      versions.push_back({{"id", v.Int(0)},
                          {"version", v.Int(1)},
                          {"manifest_id", v.Text(2)},
                          {"manifest_bytes", v.Int(3)},
                          {"files", v.Int(4)},
                          {"bytes", v.Int(5)},
                          {"chunks", v.Int(6)},
                          {"programs", programs.is_discarded() ? Json::array() : programs},
                          {"created_at", v.Int(8)}});
    }
    package_ids->push_back(p.Int(0));
    out.push_back({{"id", p.Int(0)},
                   {"uid", p.Text(1)},
                   {"name", p.Text(2)},
                   {"description", p.Text(3)},
                   {"created_at", p.Int(4)},
                   {"versions", versions}});
  }
  return out;
}

// Every collection (each site evaluates rules over its own clients), and the live
// deployments of the packages the child pulls.
core::Status FeedWork(catalog::Tx& tx, const std::vector<std::int64_t>& package_ids, Json* feed) {
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows cols,
      tx.Query(
          "SELECT id, name, kind, rule, description, created_at FROM collections ORDER BY id"));
  Json collections = Json::array();
  for (const auto& c : cols) {
    collections.push_back({{"id", c.Int(0)},
                           {"name", c.Text(1)},
                           {"kind", c.Text(2)},
                           {"rule", c.Text(3)},
                           {"description", c.Text(4)},
                           {"created_at", c.Int(5)}});
  }
  (*feed)["collections"] = collections;
  Json deployments = Json::array();
  for (std::int64_t pid : package_ids) {
    DEPOT_ASSIGN_OR_RETURN(
        catalog::Rows ds,
        tx.Query("SELECT id, package_id, pinned_version, program, collection_id, kind, start_at, "
                 "deadline_at, windows, created_at FROM deployments WHERE package_id = ? AND "
                 "cancelled_at IS NULL ORDER BY id",
                 {pid}));
    for (const auto& d : ds) {
      Json windows = Json::parse(d.Text(8), nullptr, false);
      deployments.push_back({{"id", d.Int(0)},
                             {"package_id", d.Int(1)},
                             {"pinned_version", d.IsNull(2) ? Json() : Json(d.Int(2))},
                             {"program", d.Text(3)},
                             {"collection_id", d.Int(4)},
                             {"kind", d.Text(5)},
                             {"start_at", d.Int(6)},
                             {"deadline_at", d.IsNull(7) ? Json() : Json(d.Int(7))},
                             {"windows", windows.is_discarded() ? Json::array() : windows},
                             {"created_at", d.Int(9)}});
    }
  }
  (*feed)["deployments"] = deployments;
  return Status::Ok();
}

}  // namespace

core::Result<Json> ChildFeed(SiteContext& ctx, std::int64_t child_id) {
  Json feed;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    auto row = tx.QueryRow(
        "SELECT code, all_packages, max_rate, windows FROM children WHERE id = ?", {child_id});
    if (!row.ok()) {
      if (row.status().IsNotFound()) return Status::PermissionDenied("this child site was removed");
      return row.status();
    }
    std::vector<std::int64_t> package_ids;
    DEPOT_ASSIGN_OR_RETURN(Json packages,
                           FeedPackages(tx, row->Int(1) != 0, row->Text(0), &package_ids));
    feed = {{"site", ctx.config.code},
            {"child", row->Text(0)},
            {"packages", packages},
            {"schedule", LinkScheduleJson(row->Int(2), row->Text(3))}};
    return FeedWork(tx, package_ids, &feed);
  });
  if (!s.ok()) return s;
  // The ETag is the feed's own hash: any change anywhere in it, and only a change,
  // answers a parked poll.
  feed["etag"] = ContentEtag(feed);
  return feed;
}

void HandleChildFeed(SiteContext& ctx, std::int64_t child_id, http::Request& req,
                     http::Response* resp) {
  // The topic sequence before the state, so no change can slip in between.
  std::uint64_t seq = ctx.server != nullptr ? ctx.server->Sequence("assignments") : 0;
  if (req.poll_round == 0) {
    // The child's own request: its sign of life on this link.
    ctx.db
        ->Transaction([&](catalog::Tx& tx) {
          return tx
              .Exec("UPDATE children SET last_feed_at = ? WHERE id = ?", {ctx.NowMs(), child_id})
              .status();
        })
        .IgnoreError();
  }
  auto feed = ChildFeed(ctx, child_id);
  if (!feed.ok()) {
    *resp = ErrorResponse(feed.status());
    return;
  }
  AnswerLongPoll(ctx, req, seq, *feed, resp);
}

void CheckChildren(SiteContext& ctx) {
  constexpr std::int64_t kContactEvery = 60'000;  // a feed poll parks at most 30 s
  auto rows = ctx.db->Query(
      "SELECT id, code, created_at, last_feed_at, last_report_at, link, health FROM children");
  if (!rows.ok()) return;
  const std::int64_t now = ctx.NowMs();
  for (const auto& r : *rows) {
    std::int64_t last =
        std::max({r.Int(2), r.IsNull(3) ? 0 : r.Int(3), r.IsNull(4) ? 0 : r.Int(4)});
    std::int64_t missed = std::max<std::int64_t>(0, (now - last) / kContactEvery);
    Json link = Json::parse(r.Text(5), nullptr, false);
    std::int64_t reported = link.is_object() ? link.value("failures", std::int64_t{0}) : 0;
    const std::int64_t failures = std::max(missed, reported);
    const std::string health = LinkHealth(failures);
    if (health == r.Text(6)) continue;
    const std::string code = r.Text(1);
    ctx.db
        ->Transaction([&](catalog::Tx& tx) -> Status {
          DEPOT_RETURN_IF_ERROR(
              tx.Exec("UPDATE children SET health = ?, health_since = ? WHERE id = ?",
                      {health, now, r.Int(0)})
                  .status());
          int msg = health == "failed"     ? core::msg::kLinkFailed
                    : health == "degraded" ? core::msg::kLinkDegraded
                                           : core::msg::kLinkActive;
          std::string why =
              missed >= reported
                  ? "no contact for " + core::FormatDuration(std::chrono::milliseconds(now - last))
                  : link.value("last_error", std::string("the child reports failures"));
          return PostMessage(ctx, tx, msg, {},
                             {{"link", ctx.config.code + " -> " + code},
                              {"failures", std::to_string(failures)},
                              {"error", why}});
        })
        .IgnoreError();
  }
}

core::Result<Json> HierarchyOverview(SiteContext& ctx) {
  DEPOT_ASSIGN_OR_RETURN(Json list, ListChildren(ctx));
  Json children = Json::array();
  for (auto& c : list["children"]) {
    children.push_back({{"code", c["code"]},
                        {"health", c["health"]},
                        {"since", c["health_since"]},
                        {"silent_s", c["silent_s"]},
                        {"link", c["link"]}});
  }
  auto rank = [](const Json& c) {
    const std::string h = c["health"].get<std::string>();
    return h == "failed" ? 0 : h == "degraded" ? 1 : 2;
  };
  std::stable_sort(children.begin(), children.end(),
                   [&](const Json& a, const Json& b) { return rank(a) < rank(b); });
  Json out = {{"children", children}};
  if (ctx.config.is_child()) {
    DEPOT_ASSIGN_OR_RETURN(
        catalog::Rows link,
        ctx.db->Query("SELECT state, failures, last_contact_at, last_error, versions_behind, "
                      "bytes_behind, acked_seq, (SELECT COUNT(*) FROM up_dirty) FROM parent_link "
                      "WHERE id = 1"));
    Json p = {{"url", ctx.config.parent_url}};
    if (!link.empty()) {
      const auto& r = link[0];
      p.update({{"state", r.Text(0)},
                {"failures", r.Int(1)},
                {"last_contact", r.IsNull(2) ? "" : FormatMs(r.Int(2))},
                {"last_error", r.Text(3)},
                {"versions_behind", r.Int(4)},
                {"bytes_behind", r.Int(5)},
                {"reports_acked", r.Int(6)},
                {"reports_pending", r.Int(7)}});
    }
    out["parent"] = p;
  }
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows sites,
      ctx.db->Query("SELECT s.site, (SELECT COUNT(*) FROM tree_clients c WHERE c.site = s.site), "
                    "(SELECT COUNT(*) FROM tree_dps d WHERE d.site = s.site AND d.state <> "
                    "'ready') FROM tree_sites s ORDER BY s.site"));
  Json subtree = Json::array();
  for (const auto& r : sites)
    subtree.push_back({{"site", r.Text(0)}, {"clients", r.Int(1)}, {"dps_not_ready", r.Int(2)}});
  out["subtree"] = subtree;
  return out;
}

}  // namespace depot::site
