#include "site/deployments.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>

#include "core/messages.h"
#include "site/membership.h"
#include "site/messages.h"

namespace depot::site {

using core::Status;

namespace {

core::Result<std::int64_t> ParseWhen(SiteContext& ctx, const std::string& s, const char* what) {
  if (s.empty() || s == "now") return ctx.NowMs();
  if (s[0] == '+') {
    auto d = core::ParseDuration(s.substr(1));
    if (d.ok())
      return ctx.NowMs() + std::chrono::duration_cast<std::chrono::milliseconds>(*d).count();
  } else {
    auto t = core::ParseUtc(s);
    if (t.ok())
      return std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count();
  }
  return Status::InvalidArgument(
      std::string(what) + " `" + s.substr(0, 40) +
      "` must be `now`, a UTC time like 2026-11-24T08:00:00Z, or +DURATION like +2h");
}

bool ValidTimeZone(const std::string& tz) {
  if (tz == "UTC") return true;
  if (tz.empty() || tz.size() > 64 || tz.find("..") != std::string::npos || tz[0] == '/')
    return false;
  for (char c : tz) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '-' ||
          c == '+'))
      return false;
  }
  struct stat st;
  return ::stat(("/usr/share/zoneinfo/" + tz).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Deployment state counts: clients targeted, and how many reported each state.
core::Result<Json> DeploymentCounts(SiteContext& ctx, std::int64_t deployment_id,
                                    std::int64_t collection_id) {
  DEPOT_ASSIGN_OR_RETURN(
      std::int64_t targeted,
      ctx.db->QueryInt("SELECT COUNT(*) FROM collection_members WHERE collection_id = ?",
                       {collection_id}));
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows rows,
      ctx.db->Query(
          "SELECT cd.state, COUNT(*) FROM client_deployments cd JOIN collection_members m "
          "ON m.client_id = cd.client_id AND m.collection_id = ? WHERE cd.deployment_id = ? "
          "GROUP BY cd.state",
          {collection_id, deployment_id}));
  Json counts = {{"targeted", targeted}, {"waiting", 0},   {"downloading", 0}, {"downloaded", 0},
                 {"installing", 0},      {"succeeded", 0}, {"failed", 0}};
  std::int64_t reported = 0;
  for (const auto& r : rows) {
    std::string state = r.Text(0);
    if (!counts.contains(state)) state = "failed";
    counts[state] = counts[state].get<std::int64_t>() + r.Int(1);
    if (state != "waiting") reported += r.Int(1);
  }
  counts["waiting"] = std::max<std::int64_t>(0, targeted - reported);
  return counts;
}

// The version (`v`: version, programs) has the program the deployment runs.
Status CheckProgram(const std::string& package, const std::string& program, const catalog::Row& v) {
  Json programs = Json::parse(v.Text(1), nullptr, false);
  bool has_program = false;
  std::string names;
  if (programs.is_array()) {
    for (const auto& x : programs) {
      if (!x.is_string()) continue;
      has_program = has_program || x.get<std::string>() == program;
      names += (names.empty() ? "" : ", ") + x.get<std::string>();
    }
  }
  if (!has_program) {
    return Status::InvalidArgument(
        "package " + package + " version " + std::to_string(v.Int(0)) + " has no program `" +
        program + "`" + (names.empty() ? " (it has no programs)" : " (it has: " + names + ")"));
  }
  return Status::Ok();
}

}  // namespace

core::Result<Json> ParseWindows(const Json* raw) {
  Json out = Json::array();
  if (raw == nullptr) return out;
  if (!raw->is_array() || raw->size() > 16) {
    return Status::InvalidArgument("windows must be a list of at most 16 maintenance windows");
  }
  for (std::size_t i = 0; i < raw->size(); ++i) {
    ObjectReader r((*raw)[i], "window " + std::to_string(i));
    std::string start = r.String("start", true, 5);
    std::string duration = r.String("duration", true, 16);
    std::string tz = r.String("tz", false, 64, "UTC");
    DEPOT_RETURN_IF_ERROR(r.Finish());
    int hh = -1, mm = -1;
    if (start.size() == 5 && start[2] == ':' &&
        std::isdigit(static_cast<unsigned char>(start[0])) &&
        std::isdigit(static_cast<unsigned char>(start[1])) &&
        std::isdigit(static_cast<unsigned char>(start[3])) &&
        std::isdigit(static_cast<unsigned char>(start[4]))) {
      hh = (start[0] - '0') * 10 + (start[1] - '0');
      mm = (start[3] - '0') * 10 + (start[4] - '0');
    }
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59) {
      return Status::InvalidArgument("window " + std::to_string(i) +
                                     ": start must be HH:MM (24-hour)");
    }
    auto d = core::ParseDuration(duration);
    if (!d.ok() || *d <= core::Duration::zero() || *d > std::chrono::hours(24)) {
      return Status::InvalidArgument("window " + std::to_string(i) +
                                     ": duration must be like 2h or 90m, at most 24h");
    }
    if (!ValidTimeZone(tz)) {
      return Status::InvalidArgument("window " + std::to_string(i) + ": unknown time zone `" +
                                     tz.substr(0, 64) +
                                     "` (use an IANA name like Europe/Berlin, or UTC)");
    }
    out.push_back({{"start", start},
                   {"duration_s", std::chrono::duration_cast<std::chrono::seconds>(*d).count()},
                   {"tz", tz}});
  }
  return out;
}

core::Result<Json> CreateDeployment(SiteContext& ctx, const Json& body) {
  ObjectReader r(body, "new deployment");
  std::string package = r.String("package", true, 64);
  std::string program = r.String("program", true, 32);
  std::string collection = r.String("collection", true, 64);
  std::string kind = r.String("kind", false, 16, "available");
  std::string start = r.String("start", false, 40, "now");
  std::string deadline = r.String("deadline", false, 40);
  auto pinned = r.OptInt("version", 1, INT64_MAX);
  const Json* raw_windows = r.Raw("windows");
  DEPOT_RETURN_IF_ERROR(r.Finish());
  if (kind != "required" && kind != "available") {
    return Status::InvalidArgument("deployment kind must be required or available");
  }
  DEPOT_ASSIGN_OR_RETURN(std::int64_t start_ms, ParseWhen(ctx, start, "start"));
  std::optional<std::int64_t> deadline_ms;
  if (!deadline.empty()) {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t d, ParseWhen(ctx, deadline, "deadline"));
    if (d < start_ms) return Status::InvalidArgument("deadline is before the start");
    deadline_ms = d;
  }
  DEPOT_ASSIGN_OR_RETURN(Json windows, ParseWindows(raw_windows));
  std::int64_t id = 0;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    auto p =
        tx.QueryRow("SELECT id FROM packages WHERE name = ? AND deleted_at IS NULL", {package});
    if (!p.ok())
      return p.status().IsNotFound() ? Status::NotFound("no package named " + package) : p.status();
    auto c = tx.QueryRow("SELECT id FROM collections WHERE name = ?", {collection});
    if (!c.ok()) {
      return c.status().IsNotFound()
                 ? Status::NotFound("no collection named " + collection +
                                    " (create it with `depot collection create`)")
                 : c.status();
    }
    auto v = pinned ? tx.QueryRow(
                          "SELECT version, programs FROM versions WHERE package_id = ? AND version "
                          "= ? AND state = 'active'",
                          {p->Int(0), *pinned})
                    : tx.QueryRow(
                          "SELECT version, programs FROM versions WHERE package_id = ? AND state = "
                          "'active' ORDER BY "
                          "version DESC LIMIT 1",
                          {p->Int(0)});
    if (!v.ok()) {
      if (!v.status().IsNotFound()) return v.status();
      return pinned ? Status::NotFound("package " + package + " has no active version " +
                                       std::to_string(*pinned))
                    : Status::NotFound("package " + package + " has no version yet");
    }
    DEPOT_RETURN_IF_ERROR(CheckProgram(package, program, *v));
    DEPOT_ASSIGN_OR_RETURN(
        id,
        tx.QueryInt(
            "INSERT INTO deployments (package_id, pinned_version, program, collection_id, kind, "
            "start_at, deadline_at, windows, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING id",
            {p->Int(0), pinned, program, c->Int(0), kind, start_ms, deadline_ms, Dump(windows),
             ctx.NowMs()}));
    return PostMessage(ctx, tx, core::msg::kDeploymentCreated, {package, {}, {}, {}, id},
                       {{"deployment", std::to_string(id)},
                        {"package", package},
                        {"kind", kind},
                        {"collection", collection}});
  });
  if (!s.ok()) return s;
  ctx.Changed();
  return ShowDeployment(ctx, id);
}

core::Result<Json> ListDeployments(SiteContext& ctx) {
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows rows,
      ctx.db->Query(
          "SELECT d.id, p.name, d.program, c.name, d.kind, d.start_at, d.deadline_at, "
          "d.cancelled_at, d.collection_id, d.pinned_version FROM deployments d JOIN packages p ON "
          "p.id = d.package_id JOIN collections c ON c.id = d.collection_id ORDER BY d.id"));
  Json out = Json::array();
  for (const auto& r : rows) {
    Json j = {{"id", r.Int(0)},
              {"package", r.Text(1)},
              {"program", r.Text(2)},
              {"collection", r.Text(3)},
              {"kind", r.Text(4)},
              {"start", FormatMs(r.Int(5))},
              {"state", r.IsNull(7) ? "active" : "cancelled"}};
    if (!r.IsNull(6)) j["deadline"] = FormatMs(r.Int(6));
    if (!r.IsNull(9)) j["pinned_version"] = r.Int(9);
    DEPOT_ASSIGN_OR_RETURN(Json counts, DeploymentCounts(ctx, r.Int(0), r.Int(8)));
    j["clients"] = counts;
    out.push_back(std::move(j));
  }
  return Json{{"deployments", out}};
}

core::Result<Json> ShowDeployment(SiteContext& ctx, std::int64_t id, bool with_attributes) {
  auto r = ctx.db->QueryRow(
      "SELECT d.id, p.name, d.program, c.name, d.kind, d.start_at, d.deadline_at, d.cancelled_at, "
      "d.collection_id, d.pinned_version, d.windows, d.created_at FROM deployments d JOIN packages "
      "p ON "
      "p.id = d.package_id JOIN collections c ON c.id = d.collection_id WHERE d.id = ?",
      {id});
  if (!r.ok()) {
    return r.status().IsNotFound() ? Status::NotFound("no deployment " + std::to_string(id) +
                                                      " (see `depot deployment list`)")
                                   : r.status();
  }
  Json j = {{"id", r->Int(0)},
            {"package", r->Text(1)},
            {"program", r->Text(2)},
            {"collection", r->Text(3)},
            {"kind", r->Text(4)},
            {"start", FormatMs(r->Int(5))},
            {"created", FormatMs(r->Int(11))},
            {"state", r->IsNull(7) ? "active" : "cancelled"}};
  if (!r->IsNull(6)) j["deadline"] = FormatMs(r->Int(6));
  if (!r->IsNull(7)) j["cancelled"] = FormatMs(r->Int(7));
  if (!r->IsNull(9)) j["pinned_version"] = r->Int(9);
  Json windows = Json::parse(r->Text(10), nullptr, false);
  j["windows"] = windows.is_discarded() ? Json::array() : windows;
  DEPOT_ASSIGN_OR_RETURN(Json counts, DeploymentCounts(ctx, id, r->Int(8)));
  j["clients"] = counts;
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows reps,
      ctx.db->Query("SELECT cl.uid, cl.name, cd.state, cd.version, cd.exit_code, cd.detail, "
                    "cd.updated_at, cl.attributes FROM client_deployments cd JOIN clients cl ON "
                    "cl.id = "
                    "cd.client_id WHERE cd.deployment_id = ? ORDER BY cl.name LIMIT 1000",
                    {id}));
  Json reports = Json::array();
  for (const auto& x : reps) {
    Json rep = {{"client", x.Text(0)},
                {"name", x.Text(1)},
                {"state", x.Text(2)},
                {"detail", x.Text(5)},
                {"updated", FormatMs(x.Int(6))}};
    if (!x.IsNull(3)) rep["version"] = x.Int(3);
    if (!x.IsNull(4)) rep["exit_code"] = x.Int(4);
    rep["site"] = "";
    if (with_attributes) rep["attributes"] = StoredAttributesJson(x.Text(7));
    reports.push_back(std::move(rep));
  }
  // The subtree's clients, as the child sites reported them (docs/hierarchy.md).
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows tree,
      ctx.db->Query("SELECT t.site, t.client_uid, COALESCE(c.name, ''), t.state, t.version, "
                    "t.exit_code, t.detail, t.updated_at, COALESCE(c.attributes, '{}') FROM "
                    "tree_client_deployments t LEFT JOIN "
                    "tree_clients c ON c.site = t.site AND c.uid = t.client_uid WHERE "
                    "t.deployment_id = ? ORDER BY t.site, c.name LIMIT 10000",
                    {id}));
  Json by_site = Json::object();
  for (const auto& x : tree) {
    Json rep = {{"site", x.Text(0)},  {"client", x.Text(1)}, {"name", x.Text(2)},
                {"state", x.Text(3)}, {"detail", x.Text(6)}, {"updated", FormatMs(x.Int(7))}};
    if (!x.IsNull(4)) rep["version"] = x.Int(4);
    if (!x.IsNull(5)) rep["exit_code"] = x.Int(5);
    if (with_attributes) rep["attributes"] = StoredAttributesJson(x.Text(8));
    Json& site_counts = by_site[x.Text(0)];
    if (!site_counts.is_object()) site_counts = Json::object();
    site_counts[x.Text(3)] = site_counts.value(x.Text(3), 0) + 1;
    reports.push_back(std::move(rep));
  }
  j["reports"] = reports;
  j["sites"] = by_site;
  return j;
}

core::Result<Json> CancelDeployment(SiteContext& ctx, std::int64_t id) {
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(
        std::int64_t n,
        tx.Exec("UPDATE deployments SET cancelled_at = ? WHERE id = ? AND cancelled_at IS NULL",
                {ctx.NowMs(), id}));
    if (n == 0) {
      DEPOT_ASSIGN_OR_RETURN(std::int64_t exists,
                             tx.QueryInt("SELECT COUNT(*) FROM deployments WHERE id = ?", {id}));
      return exists ? Status::InvalidArgument("deployment " + std::to_string(id) +
                                              " is already cancelled")
                    : Status::NotFound("no deployment " + std::to_string(id));
    }
    return PostMessage(ctx, tx, core::msg::kDeploymentCancelled, {{}, {}, {}, {}, id},
                       {{"deployment", std::to_string(id)}});
  });
  if (!s.ok()) return s;
  ctx.Changed();
  // Versions it pinned may now fall to retention.
  return ShowDeployment(ctx, id);
}

}  // namespace depot::site
