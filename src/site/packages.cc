#include "site/packages.h"

#include <algorithm>
#include <cstring>

#include "core/crash_point.h"
#include "core/log.h"
#include "core/messages.h"
#include "core/random.h"
#include "core/sha256.h"
#include "core/toml_config.h"
#include "site/distribution.h"
#include "site/messages.h"
#include "site/package_programs.h"
#include "site/processes.h"
#include "store/chunk_batch.h"
#include "store/manifest.h"
#include "tuf/metadata.h"

namespace depot::site {

using core::Status;

namespace {

struct VersionRow {
  std::int64_t id = 0, package_id = 0, version = 0;
  std::string package;
};

// Marks versions retired in one transaction (dropping their DP records, so DPs stop
// at once), then removes them from the signed targets.
Status RetireVersions(SiteContext& ctx, const std::vector<VersionRow>& versions,
                      const std::string& reason) {
  if (versions.empty()) return Status::Ok();
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    for (const VersionRow& v : versions) {
      DEPOT_RETURN_IF_ERROR(tx.Exec("UPDATE versions SET state = 'retired', retired_at = ? "
                                    "WHERE id = ? AND state = 'active'",
                                    {ctx.NowMs(), v.id})
                                .status());
      DEPOT_RETURN_IF_ERROR(DeleteRecordsOfVersion(ctx, tx, v.id));
      DEPOT_RETURN_IF_ERROR(PostMessage(
          ctx, tx, core::msg::kVersionRetired, {v.package, v.version, {}, {}, {}},
          {{"package", v.package}, {"version", std::to_string(v.version)}, {"reason", reason}}));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  ctx.Changed();
  std::vector<std::pair<std::string, std::int64_t>> remove;
  for (const VersionRow& v : versions) remove.emplace_back(v.package, v.version);
  DEPOT_ASSIGN_OR_RETURN(SignerLock signer, LockSigner(ctx));
  return ctx.repo->RemoveVersions(remove);
}

// Resolves a version a crash left reserved: activated when it was signed (`info`),
// dropped when it was not (nullptr).
Status ResolveReservation(SiteContext& ctx, const VersionRow& v, const repo::VersionInfo* info) {
  bool is_signed = info != nullptr;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    if (!is_signed) {
      DEPOT_RETURN_IF_ERROR(tx.Exec("DELETE FROM versions WHERE id = ?", {v.id}).status());
      // A package whose first version was reserved but never signed was never
      // created: drop its row unless something refers to it.
      return tx
          .Exec(
              "DELETE FROM packages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM versions WHERE "
              "package_id = ?) "
              "AND NOT EXISTS (SELECT 1 FROM distributions WHERE package_id = ?) AND NOT "
              "EXISTS (SELECT 1 "
              "FROM deployments WHERE package_id = ?)",
              {v.package_id, v.package_id, v.package_id, v.package_id})
          .status();
    }
    auto bytes = ctx.env->ReadFile(
        core::JoinPath(ctx.repo->layout().targets(),
                       tuf::ConsistentTargetPath(repo::ManifestTargetPath(v.package, v.version),
                                                 info->manifest_id)),
        info->manifest_bytes);
    std::uint64_t files = 0, total = 0, chunks = 0;
    Json programs = Json::array();
    if (bytes.ok()) {
      auto m = store::ParseManifest(*bytes);
      if (m.ok()) {
        files = m->FileCount();
        total = m->TotalFileBytes();
        chunks = m->UniqueChunks().size();
        for (const auto& p : m->programs) programs.push_back(p.name);
      }
    }
    DEPOT_RETURN_IF_ERROR(
        tx.Exec(
              "UPDATE versions SET state = 'active', manifest_id = ?, manifest_bytes = ?, "
              "files = ?, bytes = ?, chunks = ?, programs = ? WHERE id = ?",
              {info->manifest_id, info->manifest_bytes, files, total, chunks, Dump(programs), v.id})
            .status());
    DEPOT_RETURN_IF_ERROR(SyncRecords(ctx, tx, v.package_id));
    // The crash came before the version's message was posted; post it now.
    return PostMessage(ctx, tx, core::msg::kVersionCreated, {v.package, v.version, {}, {}, {}},
                       {{"package", v.package},
                        {"version", std::to_string(v.version)},
                        {"files", std::to_string(files)},
                        {"bytes", std::to_string(total)},
                        {"manifest_id", info->manifest_id}});
  });
  if (!s.ok())
    return s.WithContext("recovering version " + std::to_string(v.version) + " of " + v.package);
  core::Log(core::LogLevel::kInfo, "site.recovered_version",
            {{"package", v.package},
             {"version", std::to_string(v.version)},
             {"outcome", is_signed ? "activated" : "dropped"}});
  return Status::Ok();
}

}  // namespace

core::Result<Json> ChunksMissing(SiteContext& ctx, const Json& body) {
  ObjectReader r(body, "missing-chunks query");
  std::vector<std::string> ids = r.Strings("chunks", true, 200'000, 64);
  DEPOT_RETURN_IF_ERROR(r.Finish());
  Json missing = Json::array();
  for (const std::string& hex : ids) {
    DEPOT_ASSIGN_OR_RETURN(core::Digest id, core::ParseDigestHex(hex));
    // A chunk another request staged is not missing: it is durable by the time a
    // version referencing it commits (CreateVersion flushes the intake first).
    if (ctx.intake->Staged(id)) continue;
    // Certainly absent (the usual answer for a new upload): no lookup.
    if (!ctx.chunk_filter->MayContain(id)) {
      missing.push_back(hex);
      continue;
    }
    DEPOT_ASSIGN_OR_RETURN(bool has, ctx.repo->chunks()->Has(id));
    if (!has) missing.push_back(hex);
  }
  return Json{{"missing", missing}};
}

core::Result<Json> ReceiveChunks(SiteContext& ctx, std::string_view body) {
  const std::uint32_t max_size = ctx.repo->settings().chunker.max_size;
  // One decompression buffer per server thread, reused across requests.
  thread_local std::string scratch;
  std::uint64_t stored = 0, bytes = 0;
  std::vector<core::Digest> ids;
  DEPOT_RETURN_IF_ERROR(store::ForEachChunkRecord(body, [&](const store::ChunkRecord& r) -> Status {
    if (r.size > max_size) {
      return Status::InvalidArgument("chunk batch: chunk " + core::DigestHex(r.id) + " is " +
                                     std::to_string(r.size) + " bytes, above the repository's " +
                                     std::to_string(max_size) + "-byte maximum");
    }
    // Added before it is staged, so a query that no longer finds it staged finds it
    // here (the intake's lock orders the two).
    ctx.chunk_filter->Add(r.id);
    auto put = ctx.intake->Put(r.id, r.size, r.frame, &scratch);
    if (!put.ok()) {
      if (ctx.chunks_rejected) ctx.chunks_rejected->Inc();
      return std::move(put).status().WithContext("chunk batch: chunk " + core::DigestHex(r.id) +
                                                 " rejected");
    }
    ++stored;
    bytes += r.frame.size();
    ids.push_back(r.id);
    return Status::Ok();
  }));
  // Staged: verified and written, durable at the intake's next group commit, which
  // runs off this thread (and at the latest when a version referencing them commits).
  core::CrashPoint("site.chunks_stored");
  if (ctx.db->shared()) {
    // Other processes may commit the version that references them (a balancer spreads
    // one upload's requests): durable before the answer, and out of their filters.
    DEPOT_RETURN_IF_ERROR(ctx.intake->Flush().WithContext("committing uploaded chunks"));
    AnnounceChunks(ctx, ids);
  }
  if (ctx.chunks_received) ctx.chunks_received->Inc(stored);
  if (ctx.chunk_bytes_received) ctx.chunk_bytes_received->Inc(bytes);
  return Json{{"stored", stored}, {"bytes", bytes}};
}

void PostUploadRejected(SiteContext& ctx, const std::string& package, const Status& why) {
  std::string name = store::ValidatePackageName(package).ok() ? package : std::string();
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) {
    return PostMessage(ctx, tx, core::msg::kUploadRejected, {name, {}, {}, {}, {}},
                       {{"package", name.empty() ? "(not named)" : name},
                        {"error", why.message().substr(0, 2048)},
                        {"code", std::string(core::CodeName(why.code()))}});
  });
  if (!s.ok()) core::Log(core::LogLevel::kWarn, "site.message_failed", {{"error", s.ToString()}});
}

core::Result<Json> ListPackages(SiteContext& ctx) {
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows rows,
      ctx.db->Query(
          "SELECT p.name, p.uid, p.description, p.created_at, "
          " (SELECT MAX(v.version) FROM versions v WHERE v.package_id = p.id AND v.state = "
          "'active'),"
          " (SELECT COUNT(*) FROM versions v WHERE v.package_id = p.id AND v.state = 'active'),"
          " (SELECT v.bytes FROM versions v WHERE v.package_id = p.id AND v.state = 'active' "
          "ORDER BY v.version DESC LIMIT 1),"
          " (SELECT COUNT(*) FROM deployments d WHERE d.package_id = p.id AND d.cancelled_at IS "
          "NULL) "
          "FROM packages p WHERE p.deleted_at IS NULL ORDER BY p.name"));
  Json out = Json::array();
  for (const auto& r : rows) {
    out.push_back({{"name", r.Text(0)},
                   {"id", r.Text(1)},
                   {"description", r.Text(2)},
                   {"created", FormatMs(r.Int(3))},
                   {"latest_version", r.OptInt(4).value_or(0)},
                   {"versions", r.Int(5)},
                   {"latest_bytes", r.OptInt(6).value_or(0)},
                   {"deployments", r.Int(7)}});
  }
  return Json{{"packages", out}};
}

core::Result<Json> ShowPackage(SiteContext& ctx, const std::string& name) {
  auto pkg = ctx.db->QueryRow(
      "SELECT id, uid, description, created_at FROM packages WHERE name = ? AND deleted_at IS "
      "NULL",
      {name});
  if (!pkg.ok()) {
    if (pkg.status().IsNotFound()) {
      return Status::NotFound("no package named " + name + " (see `depot package list`)");
    }
    return pkg.status();
  }
  std::int64_t package_id = pkg->Int(0);
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows versions,
      ctx.db->Query(
          "SELECT id, version, state, manifest_id, files, bytes, chunks, programs, "
          "created_at, retired_at, new_bytes FROM versions WHERE package_id = ? AND state != "
          "'publishing' ORDER BY version DESC",
          {package_id}));
  Json vs = Json::array();
  for (const auto& v : versions) {
    Json item = {{"version", v.Int(1)},
                 {"state", v.Text(2)},
                 {"manifest_id", v.Text(3)},
                 {"files", v.Int(4)},
                 {"bytes", v.Int(5)},
                 {"chunks", v.Int(6)},
                 {"created", FormatMs(v.Int(8))}};
    if (!v.IsNull(10)) item["new_bytes"] = v.Int(10);
    Json programs = Json::parse(v.Text(7), nullptr, false);
    item["programs"] = programs.is_discarded() ? Json::array() : programs;
    if (!v.IsNull(9)) item["retired"] = FormatMs(v.Int(9));
    DEPOT_ASSIGN_OR_RETURN(Json dps, VersionCoverage(ctx, v.Int(0)));
    item["dps"] = std::move(dps);
    vs.push_back(std::move(item));
  }
  DEPOT_ASSIGN_OR_RETURN(Json targets, DistributionTargets(ctx, package_id));
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows deps,
      ctx.db->Query("SELECT d.id, d.kind, d.program, c.name, d.pinned_version, d.cancelled_at "
                    "FROM deployments d JOIN collections c ON c.id = d.collection_id WHERE "
                    "d.package_id = ? ORDER BY d.id",
                    {package_id}));
  Json deployments = Json::array();
  for (const auto& d : deps) {
    Json item = {{"id", d.Int(0)},
                 {"kind", d.Text(1)},
                 {"program", d.Text(2)},
                 {"collection", d.Text(3)},
                 {"state", d.IsNull(5) ? "active" : "cancelled"}};
    if (!d.IsNull(4)) item["pinned_version"] = d.Int(4);
    deployments.push_back(std::move(item));
  }
  return Json{{"name", name},
              {"id", pkg->Text(1)},
              {"description", pkg->Text(2)},
              {"created", FormatMs(pkg->Int(3))},
              {"versions", vs},
              {"distributed_to", targets},
              {"deployments", deployments}};
}

core::Result<Json> DeletePackage(SiteContext& ctx, const std::string& name) {
  std::vector<VersionRow> versions;
  std::int64_t cancelled = 0;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    versions.clear();
    auto pkg = tx.QueryRow("SELECT id FROM packages WHERE name = ? AND deleted_at IS NULL", {name});
    if (!pkg.ok()) {
      if (pkg.status().IsNotFound()) return Status::NotFound("no package named " + name);
      return pkg.status();
    }
    std::int64_t id = pkg->Int(0);
    std::int64_t now = ctx.NowMs();
    DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                           tx.Query("SELECT id, version FROM versions WHERE package_id = ? AND "
                                    "state IN ('active', 'publishing')",
                                    {id}));
    for (const auto& r : rows) versions.push_back({r.Int(0), id, r.Int(1), name});
    // Out of every policy and assignment in this one transaction.
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("UPDATE packages SET deleted_at = ? WHERE id = ?", {now, id}).status());
    DEPOT_RETURN_IF_ERROR(tx.Exec("UPDATE versions SET state = 'retired', retired_at = ? WHERE "
                                  "package_id = ? AND state IN ('active', 'publishing')",
                                  {now, id})
                              .status());
    for (const VersionRow& v : versions)
      DEPOT_RETURN_IF_ERROR(DeleteRecordsOfVersion(ctx, tx, v.id));
    DEPOT_RETURN_IF_ERROR(tx.Exec("DELETE FROM distributions WHERE package_id = ?", {id}).status());
    DEPOT_ASSIGN_OR_RETURN(cancelled, tx.Exec("UPDATE deployments SET cancelled_at = ? WHERE "
                                              "package_id = ? AND cancelled_at IS NULL",
                                              {now, id}));
    return PostMessage(ctx, tx, core::msg::kPackageDeleted, {name, {}, {}, {}, {}},
                       {{"package", name}, {"grace", core::FormatDuration(ctx.config.gc_grace)}});
  });
  if (!s.ok()) return s;
  ctx.Changed();
  std::vector<std::pair<std::string, std::int64_t>> remove;
  for (const VersionRow& v : versions) remove.emplace_back(v.package, v.version);
  {
    // Not unsigned now (an error): recovery unsigns retired versions at its next pass.
    auto signer = LockSigner(ctx);
    Status rs = signer.ok() ? ctx.repo->RemoveVersions(remove) : signer.status();
    if (!rs.ok()) {
      core::Log(core::LogLevel::kWarn, "site.unsign_failed",
                {{"package", name}, {"error", rs.ToString()}});
    }
  }
  return Json{{"package", name},
              {"versions_retired", versions.size()},
              {"deployments_cancelled", cancelled},
              {"content_collected_after", core::FormatDuration(ctx.config.gc_grace)}};
}

Status RecoverVersions(SiteContext& ctx) {
  std::vector<std::pair<std::string, std::int64_t>> unsign;
  std::vector<VersionRow> lost;
  bool resolved = false;
  {
    // Under the signer lock: no version is signed between reading the signed targets
    // and the catalog, so "active but not signed" means lost, not "signed just now".
    DEPOT_ASSIGN_OR_RETURN(SignerLock signer, LockSigner(ctx));
    DEPOT_ASSIGN_OR_RETURN(std::vector<repo::VersionInfo> signed_versions,
                           ctx.repo->ListVersions());
    std::map<std::pair<std::string, std::int64_t>, repo::VersionInfo> by_key;
    for (auto& v : signed_versions) by_key[{v.package, v.version}] = v;
    // A reservation is resolved only when no live process is still working on it: its
    // process is dead, or it is this process's and no upload of it is in flight.
    DEPOT_ASSIGN_OR_RETURN(
        catalog::Rows rows,
        ctx.db->Query("SELECT v.id, v.package_id, v.version, v.state, p.name, "
                      "COALESCE(v.reserved_by, ''), CASE WHEN " +
                          AliveSql("v.reserved_by") +
                          " THEN 1 ELSE 0 END "
                          "FROM versions v JOIN packages p ON p.id = v.package_id",
                      {LiveSince(ctx)}));
    for (const auto& r : rows) {
      VersionRow v{r.Int(0), r.Int(1), r.Int(2), r.Text(4)};
      const std::string state = r.Text(3), owner = r.Text(5);
      auto it = by_key.find({v.package, v.version});
      bool is_signed = it != by_key.end();
      if (state == "publishing") {
        const bool mine = owner == ctx.process_id, alive = r.Int(6) != 0;
        if (mine ? ctx.reserving.load() > 0 : alive) continue;
        DEPOT_RETURN_IF_ERROR(ResolveReservation(ctx, v, is_signed ? &it->second : nullptr));
        resolved = true;
      } else if (state == "retired" && is_signed) {
        unsign.emplace_back(v.package, v.version);
      } else if (state == "active" && !is_signed) {
        lost.push_back(v);
      }
    }
    if (!unsign.empty()) DEPOT_RETURN_IF_ERROR(ctx.repo->RemoveVersions(unsign));
  }
  if (!lost.empty()) {
    DEPOT_RETURN_IF_ERROR(RetireVersions(ctx, lost, "no longer in the signed targets"));
  }
  if (resolved || !unsign.empty()) ctx.Changed();
  return Status::Ok();
}

void ApplyRetention(SiteContext& ctx) {
  // Active versions beyond the newest K of each package, unless a live deployment
  // pins them.
  auto rows = ctx.db->Query(
      "SELECT v.id, v.package_id, v.version, p.name FROM versions v JOIN packages p ON p.id = "
      "v.package_id WHERE v.state = 'active' AND p.deleted_at IS NULL AND "
      "(SELECT COUNT(*) FROM versions n WHERE n.package_id = v.package_id AND n.state = 'active' "
      " AND n.version > v.version) >= ? AND NOT EXISTS (SELECT 1 FROM deployments d WHERE "
      "d.package_id = v.package_id AND d.pinned_version = v.version AND d.cancelled_at IS NULL)",
      {ctx.config.keep_versions});
  if (!rows.ok()) {
    core::Log(core::LogLevel::kWarn, "site.retention_failed",
              {{"error", rows.status().ToString()}});
    return;
  }
  std::vector<VersionRow> retire;
  for (const auto& r : *rows) retire.push_back({r.Int(0), r.Int(1), r.Int(2), r.Text(3)});
  Status s = RetireVersions(
      ctx, retire, "retention keeps the newest " + std::to_string(ctx.config.keep_versions));
  if (!s.ok()) {
    core::Log(core::LogLevel::kWarn, "site.retention_failed", {{"error", s.ToString()}});
  }
}

void CollectContent(SiteContext& ctx) {
  std::int64_t grace_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(ctx.config.gc_grace).count();
  std::int64_t cutoff = ctx.NowMs() - grace_ms;
  auto due = ctx.db->Query(
      "SELECT id FROM versions WHERE state = 'retired' AND collected_at IS NULL AND retired_at <= "
      "?",
      {cutoff});
  if (!due.ok() || due->empty()) return;
  // Under the publish lock: nothing gets signed while the live set is computed.
  // Chunks younger than the grace period stay: they may belong to an upload in flight.
  core::Result<repo::GcReport> report = [&]() -> core::Result<repo::GcReport> {
    DEPOT_ASSIGN_OR_RETURN(SignerLock signer, LockSigner(ctx));
    if (!ctx.config.is_child()) return ctx.repo->CollectGarbage(ctx.config.gc_grace);
    // A child's signed targets are its parent's, naming much it does not hold: its
    // live set is its own active versions.
    DEPOT_ASSIGN_OR_RETURN(catalog::Rows active,
                           ctx.db->Query("SELECT p.name, v.version, v.manifest_id FROM versions v "
                                         "JOIN packages p ON p.id = v.package_id WHERE v.state = "
                                         "'active'"));
    std::map<std::string, std::string> live;
    for (const auto& a : active) {
      live[tuf::ConsistentTargetPath(repo::ManifestTargetPath(a.Text(0), a.Int(1)), a.Text(2))] =
          a.Text(2);
    }
    return ctx.repo->CollectGarbageKeeping(live, ctx.config.gc_grace);
  }();
  // Files the /repo/ server keeps open would hold the deleted ones' disk space.
  if (ctx.repo_tree) ctx.repo_tree->CloseKeptFiles();
  if (!report.ok()) {
    core::Log(core::LogLevel::kWarn, "site.gc_failed", {{"error", report.status().ToString()}});
    return;
  }
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    for (const auto& r : *due) {
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("UPDATE versions SET collected_at = ? WHERE id = ?", {ctx.NowMs(), r.Int(0)})
              .status());
    }
    return PostMessage(ctx, tx, core::msg::kContentCollected, {},
                       {{"chunks", std::to_string(report->chunks_removed)},
                        {"bytes", std::to_string(report->bytes_removed)}});
  });
  if (!s.ok()) core::Log(core::LogLevel::kWarn, "site.gc_failed", {{"error", s.ToString()}});
}

}  // namespace depot::site
