#include "site/replica.h"

#include <map>
#include <set>

#include "core/messages.h"
#include "site/distribution.h"
#include "site/membership.h"
#include "site/messages.h"
#include "site/rules.h"

namespace depot::site {

using core::Status;

namespace {

std::int64_t IntField(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
}

std::string TextField(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

catalog::Value OptField(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? catalog::Value(it->get<std::int64_t>())
                                                  : catalog::Value();
}

Status CheckFeed(const Json& feed) {
  for (const char* key : {"packages", "collections", "deployments"}) {
    if (!feed.contains(key) || !feed[key].is_array())
      return Status::InvalidArgument(std::string("the parent's feed has no list `") + key + "`");
  }
  for (const auto& p : feed["packages"]) {
    if (!p.is_object() || IntField(p, "id") <= 0 || TextField(p, "name").empty() ||
        !p.contains("versions") || !p["versions"].is_array())
      return Status::InvalidArgument("the parent's feed has a malformed package");
    for (const auto& v : p["versions"]) {
      if (!v.is_object() || IntField(v, "id") <= 0 || IntField(v, "version") <= 0 ||
          TextField(v, "manifest_id").size() != 64)
        return Status::InvalidArgument("the parent's feed has a malformed version of " +
                                       TextField(p, "name"));
    }
  }
  return Status::Ok();
}

// Retires active versions the feed no longer names (their records go: DPs stop at
// once; policies drop them with the revision bump).
Status RetireMissing(SiteContext& ctx, catalog::Tx& tx, const std::set<std::int64_t>& wanted) {
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows active,
                         tx.Query("SELECT v.id, v.version, p.name FROM versions v JOIN packages p "
                                  "ON p.id = v.package_id WHERE v.state = 'active'"));
  for (const auto& r : active) {
    if (wanted.count(r.Int(0))) continue;
    DEPOT_RETURN_IF_ERROR(tx.Exec("UPDATE versions SET state = 'retired', retired_at = ? WHERE "
                                  "id = ?",
                                  {ctx.NowMs(), r.Int(0)})
                              .status());
    DEPOT_RETURN_IF_ERROR(DeleteRecordsOfVersion(ctx, tx, r.Int(0)));
    DEPOT_RETURN_IF_ERROR(
        PostMessage(ctx, tx, core::msg::kVersionRetired, {r.Text(2), r.Int(1), {}, {}, {}},
                    {{"package", r.Text(2)},
                     {"version", std::to_string(r.Int(1))},
                     {"reason", "the parent site no longer distributes it here"}}));
  }
  return Status::Ok();
}

Status ApplyPackages(SiteContext& ctx, catalog::Tx& tx, const Json& feed,
                     std::set<std::int64_t>* wanted_versions) {
  std::set<std::int64_t> wanted;
  for (const auto& p : feed["packages"]) {
    wanted.insert(IntField(p, "id"));
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO packages (id, name, uid, description, created_at) VALUES (?, ?, ?, "
                "?, ?) ON CONFLICT (id) DO UPDATE SET description = excluded.description, "
                "deleted_at = NULL",
                {IntField(p, "id"), TextField(p, "name"), TextField(p, "uid"),
                 TextField(p, "description"), IntField(p, "created_at")})
            .status());
    for (const auto& v : p["versions"]) wanted_versions->insert(IntField(v, "id"));
  }
  DEPOT_RETURN_IF_ERROR(RetireMissing(ctx, tx, *wanted_versions));
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows live,
                         tx.Query("SELECT id, name FROM packages WHERE deleted_at IS NULL"));
  for (const auto& r : live) {
    if (wanted.count(r.Int(0))) continue;
    // Deleted at the parent (or no longer distributed here): out of every policy and
    // assignment of this site in this one transaction.
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("UPDATE packages SET deleted_at = ? WHERE id = ?", {ctx.NowMs(), r.Int(0)})
            .status());
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("DELETE FROM distributions WHERE package_id = ?", {r.Int(0)}).status());
    DEPOT_RETURN_IF_ERROR(tx.Exec("UPDATE deployments SET cancelled_at = ? WHERE package_id = ? "
                                  "AND cancelled_at IS NULL",
                                  {ctx.NowMs(), r.Int(0)})
                              .status());
    DEPOT_RETURN_IF_ERROR(PostMessage(
        ctx, tx, core::msg::kPackageDeleted, {r.Text(1), {}, {}, {}, {}},
        {{"package", r.Text(1)}, {"grace", core::FormatDuration(ctx.config.gc_grace)}}));
  }
  return Status::Ok();
}

Status ApplyCollections(catalog::Tx& tx, const Json& feed) {
  std::set<std::int64_t> wanted;
  for (const auto& c : feed["collections"]) {
    std::int64_t id = IntField(c, "id");
    if (id <= 0) return Status::InvalidArgument("the parent's feed has a malformed collection");
    wanted.insert(id);
    const std::string kind = TextField(c, "kind");
    const std::string rule = TextField(c, "rule");
    DEPOT_ASSIGN_OR_RETURN(catalog::Rows had,
                           tx.Query("SELECT kind, rule FROM collections WHERE id = ?", {id}));
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO collections (id, name, kind, rule, description, created_at) VALUES "
                "(?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = "
                "excluded.kind, rule = excluded.rule, description = excluded.description",
                {id, TextField(c, "name"), kind, rule, TextField(c, "description"),
                 IntField(c, "created_at")})
            .status());
    const bool same = !had.empty() && had[0].Text(0) == kind && had[0].Text(1) == rule;
    if (same) continue;
    if (kind == "rule") {
      // Rules are evaluated over this site's own clients.
      DEPOT_ASSIGN_OR_RETURN(Rule parsed, Rule::Parse(rule));
      DEPOT_RETURN_IF_ERROR(EvaluateRule(tx, id, parsed).status());
    } else {
      // Static members are clients of the site that listed them, none of them here.
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("DELETE FROM collection_members WHERE collection_id = ?", {id}).status());
    }
  }
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows all, tx.Query("SELECT id FROM collections"));
  for (const auto& r : all) {
    if (wanted.count(r.Int(0))) continue;
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("DELETE FROM collection_members WHERE collection_id = ?", {r.Int(0)}).status());
    DEPOT_RETURN_IF_ERROR(tx.Exec("DELETE FROM collections WHERE id = ? AND NOT EXISTS (SELECT 1 "
                                  "FROM deployments d WHERE d.collection_id = collections.id)",
                                  {r.Int(0)})
                              .status());
  }
  return Status::Ok();
}

Status ApplyDeployments(SiteContext& ctx, catalog::Tx& tx, const Json& feed) {
  std::set<std::int64_t> wanted;
  for (const auto& d : feed["deployments"]) {
    std::int64_t id = IntField(d, "id");
    if (id <= 0) return Status::InvalidArgument("the parent's feed has a malformed deployment");
    wanted.insert(id);
    Json windows = d.contains("windows") && d["windows"].is_array() ? d["windows"] : Json::array();
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO deployments (id, package_id, pinned_version, program, "
                "collection_id, kind, start_at, deadline_at, windows, created_at) VALUES (?, ?, "
                "?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET pinned_version = "
                "excluded.pinned_version, program = excluded.program, kind = excluded.kind, "
                "start_at = excluded.start_at, deadline_at = excluded.deadline_at, windows = "
                "excluded.windows, cancelled_at = NULL",
                {id, IntField(d, "package_id"), OptField(d, "pinned_version"),
                 TextField(d, "program"), IntField(d, "collection_id"), TextField(d, "kind"),
                 IntField(d, "start_at"), OptField(d, "deadline_at"), Dump(windows),
                 IntField(d, "created_at")})
            .status());
  }
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows live,
                         tx.Query("SELECT id FROM deployments WHERE cancelled_at IS NULL"));
  for (const auto& r : live) {
    if (wanted.count(r.Int(0))) continue;
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("UPDATE deployments SET cancelled_at = ? WHERE id = ?", {ctx.NowMs(), r.Int(0)})
            .status());
  }
  return Status::Ok();
}

}  // namespace

core::Result<std::vector<MissingVersion>> ApplyFeed(SiteContext& ctx, const Json& feed) {
  DEPOT_RETURN_IF_ERROR(CheckFeed(feed));
  std::vector<MissingVersion> missing;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    missing.clear();
    std::set<std::int64_t> wanted_versions;
    DEPOT_RETURN_IF_ERROR(ApplyPackages(ctx, tx, feed, &wanted_versions));
    DEPOT_RETURN_IF_ERROR(ApplyCollections(tx, feed));
    DEPOT_RETURN_IF_ERROR(ApplyDeployments(ctx, tx, feed));
    for (const auto& p : feed["packages"]) {
      for (const auto& v : p["versions"]) {
        DEPOT_ASSIGN_OR_RETURN(
            std::int64_t have,
            tx.QueryInt("SELECT COUNT(*) FROM versions WHERE id = ? AND state = 'active'",
                        {IntField(v, "id")}));
        if (have > 0) continue;
        MissingVersion m;
        m.id = IntField(v, "id");
        m.package_id = IntField(p, "id");
        m.package = TextField(p, "name");
        m.version = IntField(v, "version");
        m.manifest_id = TextField(v, "manifest_id");
        m.manifest_bytes = IntField(v, "manifest_bytes");
        m.bytes = IntField(v, "bytes");
        m.row = v;
        missing.push_back(std::move(m));
      }
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  ctx.Changed();
  std::sort(missing.begin(), missing.end(),
            [](const MissingVersion& a, const MissingVersion& b) { return a.id < b.id; });
  return missing;
}

Status ActivateVersion(SiteContext& ctx, const MissingVersion& v) {
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    const Json& r = v.row;
    Json programs = r.contains("programs") ? r["programs"] : Json::array();
    DEPOT_RETURN_IF_ERROR(
        tx.Exec(
              "INSERT INTO versions (id, package_id, version, state, manifest_id, "
              "manifest_bytes, files, bytes, chunks, programs, created_at) VALUES (?, ?, ?, "
              "'active', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET state = 'active', "
              "retired_at = NULL, collected_at = NULL",
              {v.id, v.package_id, v.version, v.manifest_id, v.manifest_bytes, IntField(r, "files"),
               v.bytes, IntField(r, "chunks"), Dump(programs), IntField(r, "created_at")})
            .status());
    return SyncRecords(ctx, tx, v.package_id);
  });
  if (!s.ok()) return s;
  ctx.Changed();
  return Status::Ok();
}

}  // namespace depot::site
