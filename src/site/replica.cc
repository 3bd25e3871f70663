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

struct FeedPackage {
  std::int64_t id = 0, created_at = 0;
  std::string uid, name, description;
  std::vector<MissingVersion> versions;  // every active version (not only missing ones)
};

struct FeedCollection {
  std::int64_t id = 0, created_at = 0;
  std::string name, kind, rule, description;
};

struct FeedDeployment {
  std::int64_t id = 0, package_id = 0, collection_id = 0, start_at = 0, created_at = 0;
  std::optional<std::int64_t> pinned_version, deadline_at;
  std::string program, kind, windows = "[]";
};

struct Feed {
  std::vector<FeedPackage> packages;
  std::vector<FeedCollection> collections;
  std::vector<FeedDeployment> deployments;
};

// The list `raw` (field `what`), each element checked to be an object.
core::Result<std::vector<const Json*>> List(const Json* raw, const char* what) {
  if (raw == nullptr || !raw->is_array())
    return Status::InvalidArgument(std::string("the parent's feed: `") + what + "` must be a list");
  std::vector<const Json*> out;
  for (const auto& e : *raw) {
    if (!e.is_object())
      return Status::InvalidArgument(std::string("the parent's feed: an element of `") + what +
                                     "` is not an object");
    out.push_back(&e);
  }
  return out;
}

core::Result<MissingVersion> ParseVersion(const Json& j, const FeedPackage& p) {
  ObjectReader r(j, "the parent's feed: a version of " + p.name);
  MissingVersion v;
  v.package_id = p.id;
  v.package = p.name;
  v.id = r.Int("id", true, 1, INT64_MAX);
  v.version = r.Int("version", true, 1, INT64_MAX);
  v.manifest_id = r.String("manifest_id", true, 64);
  v.manifest_bytes = r.Int("manifest_bytes", false, 0, INT64_MAX);
  v.files = r.Int("files", false, 0, INT64_MAX);
  v.bytes = r.Int("bytes", false, 0, INT64_MAX);
  v.chunks = r.Int("chunks", false, 0, INT64_MAX);
  v.created_at = r.Int("created_at", false, 0, INT64_MAX);
  const Json* programs = r.Raw("programs");
  DEPOT_RETURN_IF_ERROR(r.FinishKnown());
  if (v.manifest_id.size() != 64)
    return Status::InvalidArgument("the parent's feed: a version of " + p.name +
                                   " has no 64-digit manifest_id");
  if (programs != nullptr) {
    if (!programs->is_array())
      return Status::InvalidArgument("the parent's feed: programs of " + p.name + " version " +
                                     std::to_string(v.version) + " must be a list");
    v.programs = Dump(*programs);
  }
  return v;
}

core::Result<FeedPackage> ParsePackage(const Json& j) {
  ObjectReader r(j, "the parent's feed: a package");
  FeedPackage p;
  p.id = r.Int("id", true, 1, INT64_MAX);
  p.uid = r.String("uid", true, 128);
  p.name = r.String("name", true, 64);
  p.description = r.String("description", false, 4096);
  p.created_at = r.Int("created_at", false, 0, INT64_MAX);
  DEPOT_ASSIGN_OR_RETURN(auto versions, List(r.Raw("versions"), "versions"));
  DEPOT_RETURN_IF_ERROR(r.FinishKnown());
  for (const Json* v : versions) {
    DEPOT_ASSIGN_OR_RETURN(MissingVersion mv, ParseVersion(*v, p));
    p.versions.push_back(std::move(mv));
  }
  return p;
}

core::Result<FeedCollection> ParseCollection(const Json& j) {
  ObjectReader r(j, "the parent's feed: a collection");
  FeedCollection c;
  c.id = r.Int("id", true, 1, INT64_MAX);
  c.name = r.String("name", true, 128);
  c.kind = r.String("kind", true, 16);
  c.rule = r.String("rule", false, 1 << 20);
  c.description = r.String("description", false, 4096);
  c.created_at = r.Int("created_at", false, 0, INT64_MAX);
  DEPOT_RETURN_IF_ERROR(r.FinishKnown());
  return c;
}

core::Result<FeedDeployment> ParseDeployment(const Json& j) {
  ObjectReader r(j, "the parent's feed: a deployment");
  FeedDeployment d;
  d.id = r.Int("id", true, 1, INT64_MAX);
  d.package_id = r.Int("package_id", true, 1, INT64_MAX);
  d.collection_id = r.Int("collection_id", true, 1, INT64_MAX);
  d.pinned_version = r.OptInt("pinned_version", 1, INT64_MAX);
  d.program = r.String("program", true, 64);
  d.kind = r.String("kind", true, 16);
  d.start_at = r.Int("start_at", false, 0, INT64_MAX);
  d.deadline_at = r.OptInt("deadline_at", 0, INT64_MAX);
  d.created_at = r.Int("created_at", false, 0, INT64_MAX);
  const Json* windows = r.Raw("windows");
  DEPOT_RETURN_IF_ERROR(r.FinishKnown());
  if (windows != nullptr) {
    if (!windows->is_array())
      return Status::InvalidArgument("the parent's feed: windows of deployment " +
                                     std::to_string(d.id) + " must be a list");
    d.windows = Dump(*windows);
  }
  return d;
}

core::Result<Feed> ParseFeed(const Json& j) {
  ObjectReader r(j, "the parent's feed");
  DEPOT_ASSIGN_OR_RETURN(auto packages, List(r.Raw("packages"), "packages"));
  DEPOT_ASSIGN_OR_RETURN(auto collections, List(r.Raw("collections"), "collections"));
  DEPOT_ASSIGN_OR_RETURN(auto deployments, List(r.Raw("deployments"), "deployments"));
  Feed feed;
  for (const Json* p : packages) {
    DEPOT_ASSIGN_OR_RETURN(FeedPackage fp, ParsePackage(*p));
    feed.packages.push_back(std::move(fp));
  }
  for (const Json* c : collections) {
    DEPOT_ASSIGN_OR_RETURN(FeedCollection fc, ParseCollection(*c));
    feed.collections.push_back(std::move(fc));
  }
  for (const Json* d : deployments) {
    DEPOT_ASSIGN_OR_RETURN(FeedDeployment fd, ParseDeployment(*d));
    feed.deployments.push_back(std::move(fd));
  }
  return feed;
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

Status ApplyPackages(SiteContext& ctx, catalog::Tx& tx, const Feed& feed,
                     std::set<std::int64_t>* wanted_versions) {
  std::set<std::int64_t> wanted;
  for (const FeedPackage& p : feed.packages) {
    wanted.insert(p.id);
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO packages (id, name, uid, description, created_at) VALUES (?, ?, ?, "
                "?, ?) ON CONFLICT (id) DO UPDATE SET description = excluded.description, "
                "deleted_at = NULL",
                {p.id, p.name, p.uid, p.description, p.created_at})
            .status());
    for (const MissingVersion& v : p.versions) wanted_versions->insert(v.id);
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

Status ApplyCollections(catalog::Tx& tx, const Feed& feed) {
  std::set<std::int64_t> wanted;
  for (const FeedCollection& c : feed.collections) {
    const std::int64_t id = c.id;
    wanted.insert(id);
    const std::string& kind = c.kind;
    const std::string& rule = c.rule;
    DEPOT_ASSIGN_OR_RETURN(catalog::Rows had,
                           tx.Query("SELECT kind, rule FROM collections WHERE id = ?", {id}));
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO collections (id, name, kind, rule, description, created_at) VALUES "
                "(?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = "
                "excluded.kind, rule = excluded.rule, description = excluded.description",
                {id, c.name, kind, rule, c.description, c.created_at})
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

Status ApplyDeployments(SiteContext& ctx, catalog::Tx& tx, const Feed& feed) {
  std::set<std::int64_t> wanted;
  for (const FeedDeployment& d : feed.deployments) {
    wanted.insert(d.id);
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO deployments (id, package_id, pinned_version, program, "
                "collection_id, kind, start_at, deadline_at, windows, created_at) VALUES (?, ?, "
                "?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET pinned_version = "
                "excluded.pinned_version, program = excluded.program, kind = excluded.kind, "
                "start_at = excluded.start_at, deadline_at = excluded.deadline_at, windows = "
                "excluded.windows, cancelled_at = NULL",
                {d.id, d.package_id, d.pinned_version, d.program, d.collection_id, d.kind,
                 d.start_at, d.deadline_at, d.windows, d.created_at})
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

core::Result<std::vector<MissingVersion>> ApplyFeed(SiteContext& ctx, const Json& json) {
  DEPOT_ASSIGN_OR_RETURN(Feed feed, ParseFeed(json));
  std::vector<MissingVersion> missing;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    missing.clear();
    std::set<std::int64_t> wanted_versions;
    DEPOT_RETURN_IF_ERROR(ApplyPackages(ctx, tx, feed, &wanted_versions));
    DEPOT_RETURN_IF_ERROR(ApplyCollections(tx, feed));
    DEPOT_RETURN_IF_ERROR(ApplyDeployments(ctx, tx, feed));
    for (const FeedPackage& p : feed.packages) {
      for (const MissingVersion& v : p.versions) {
        DEPOT_ASSIGN_OR_RETURN(
            std::int64_t have,
            tx.QueryInt("SELECT COUNT(*) FROM versions WHERE id = ? AND state = 'active'", {v.id}));
        if (have == 0) missing.push_back(v);
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
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO versions (id, package_id, version, state, manifest_id, "
                "manifest_bytes, files, bytes, chunks, programs, created_at) VALUES (?, ?, ?, "
                "'active', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET state = 'active', "
                "retired_at = NULL, collected_at = NULL",
                {v.id, v.package_id, v.version, v.manifest_id, v.manifest_bytes, v.files, v.bytes,
                 v.chunks, v.programs, v.created_at})
            .status());
    return SyncRecords(ctx, tx, v.package_id);
  });
  if (!s.ok()) return s;
  ctx.Changed();
  return Status::Ok();
}

}  // namespace depot::site
