// CreateVersion (declared in site/packages.h): a manifest becomes the next signed,
// active version of its package, in three steps -- reserve, sign, record.
#include <chrono>
#include <functional>
#include <optional>
#include <unordered_set>

#include "core/crash_point.h"
#include "core/log.h"
#include "core/messages.h"
#include "core/random.h"
#include "site/distribution.h"
#include "site/messages.h"
#include "site/package_programs.h"
#include "site/packages.h"
#include "site/processes.h"
#include "store/chunk_store.h"
#include "store/manifest.h"

namespace depot::site {

using core::Status;

namespace {

// The catalog rows a new version takes: reserved before signing, activated after.
struct Reservation {
  std::int64_t package_id = 0, version_id = 0, version = 0;
  std::string uid;
};

// The manifest names this package and was chunked with this site's settings.
Status CheckManifestFits(SiteContext& ctx, const std::string& name, const store::Manifest& m) {
  if (m.package_name != name) {
    return Status::InvalidArgument("manifest names package `" + m.package_name + "`, not `" + name +
                                   "`");
  }
  const auto& settings = ctx.repo->settings().chunker;
  if (m.chunker.min_size != settings.min_size || m.chunker.avg_size != settings.avg_size ||
      m.chunker.max_size != settings.max_size) {
    return Status::InvalidArgument(
        "manifest was chunked with " + std::to_string(m.chunker.min_size) + "/" +
        std::to_string(m.chunker.avg_size) + "/" + std::to_string(m.chunker.max_size) +
        " but this site uses " + std::to_string(settings.min_size) + "/" +
        std::to_string(settings.avg_size) + "/" + std::to_string(settings.max_size) +
        " (the CLI asks the site; upgrade the CLI)");
  }
  return Status::Ok();
}

// The deployments the new version would orphan; InvalidArgument naming them unless
// `force`.
core::Result<Json> CheckOrphans(SiteContext& ctx, const std::string& name, const store::Manifest& m,
                                bool force) {
  // A version without a program that a deployment following the newest version runs
  // would fail on every agent of that deployment (4009): refused unless forced.
  DEPOT_ASSIGN_OR_RETURN(Json orphaned, OrphanedDeployments(ctx, name, m.programs));
  if (!orphaned.empty() && !force) {
    std::string which;
    for (const auto& o : orphaned) {
      which += (which.empty() ? "" : ", ") + std::string("deployment ") +
               std::to_string(o["deployment"].get<std::int64_t>()) + " (program `" +
               o["program"].get<std::string>() + "`, collection " +
               o["collection"].get<std::string>() + ")";
    }
    return Status::InvalidArgument("the new version of " + name + " lacks a program that " + which +
                                   " runs on the newest version; keep it (--program NAME=COMMAND), "
                                   "cancel or pin those deployments "
                                   "(`depot deployment cancel`, `depot deploy --version`), or pass "
                                   "--force to create the version anyway");
  }
  return orphaned;
}

// Reserves the next version number (creating or reviving the package row).
Status ReserveVersion(SiteContext& ctx, const std::string& name, bool create,
                      const store::Manifest& m, Reservation* res) {
  std::int64_t& package_id = res->package_id;
  std::int64_t& version_id = res->version_id;
  std::int64_t& version = res->version;
  std::string& uid = res->uid;
  return ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    auto row = tx.QueryRow("SELECT id, uid, deleted_at FROM packages WHERE name = ?", {name});
    if (!row.ok() && !row.status().IsNotFound()) return row.status();
    bool exists = row.ok() && row->IsNull(2);
    if (exists) {
      // A package row without a single version is what a crash between reserving
      // version 1 and signing it leaves (the reservation is dropped at restart): the
      // package was never created, so `create` may take it over.
      DEPOT_ASSIGN_OR_RETURN(
          std::int64_t n,
          tx.QueryInt("SELECT COUNT(*) FROM versions WHERE package_id = ?", {row->Int(0)}));
      if (n == 0 && create) exists = false;
    }
    if (create && exists) {
      return Status::InvalidArgument("package " + name +
                                     " already exists; add a version with `depot package update`");
    }
    if (!create && !exists) {
      return Status::NotFound("package " + name +
                              " does not exist; create it with `depot package create`");
    }
    if (row.ok()) {
      package_id = row->Int(0);
      uid = row->Text(1);
      if (!row->IsNull(2) ||
          create) {  // re-created after deletion (same id, versions continue) or taken over
        DEPOT_RETURN_IF_ERROR(tx.Exec("UPDATE packages SET deleted_at = NULL, description = ? "
                                      "WHERE id = ?",
                                      {m.description, package_id})
                                  .status());
      }
    } else {
      uid = core::RandomHex(8);
      DEPOT_ASSIGN_OR_RETURN(
          package_id, tx.QueryInt("INSERT INTO packages (name, uid, description, created_at) "
                                  "VALUES (?, ?, ?, ?) RETURNING id",
                                  {name, uid, m.description, ctx.NowMs()}));
    }
    DEPOT_ASSIGN_OR_RETURN(std::int64_t latest,
                           tx.QueryInt("SELECT COALESCE(MAX(version), 0) FROM versions WHERE "
                                       "package_id = ?",
                                       {package_id}));
    version = latest + 1;
    DEPOT_ASSIGN_OR_RETURN(
        version_id,
        tx.QueryInt("INSERT INTO versions (package_id, version, state, created_at, reserved_by) "
                    "VALUES (?, ?, 'publishing', ?, ?) RETURNING id",
                    {package_id, version, ctx.NowMs(), ctx.process_id}));
    return Status::Ok();
  });
}

using ChunkKnown = std::function<bool(const store::ChunkId&, std::uint64_t)>;

// OK while the reservation `version_id` is still waiting to be signed; Unavailable
// when recovery gave it back.
Status ReservationHeld(SiteContext& ctx, std::int64_t version_id) {
  auto n = ctx.db->QueryInt("SELECT COUNT(*) FROM versions WHERE id = ? AND state = 'publishing'",
                            {version_id});
  if (!n.ok()) return n.status();
  if (*n == 0) {
    return Status::Unavailable(
        "the version number reserved for this upload was given back while this site process "
        "stalled (another process took it for dead); upload again");
  }
  return Status::Ok();
}

// Signs the manifest into the targets; on failure gives the reserved number back.
core::Result<repo::AddResult> SignVersion(SiteContext& ctx, const store::Manifest& m,
                                          std::int64_t version_id, const ChunkKnown& just_stored) {
  auto signer = LockSigner(ctx);
  // Under the signer lock, as recovery runs: a process stalled for longer than the
  // lease ttl may have been taken for dead and its reservation given back. Then it
  // must not sign a number the catalog no longer holds for it.
  Status held = signer.ok() ? ReservationHeld(ctx, version_id) : signer.status();
  auto r =
      held.ok() ? ctx.repo->PublishManifest(m, just_stored) : core::Result<repo::AddResult>(held);
  if (!r.ok()) {
    // Give the number back: nothing was signed.
    ctx.db
        ->Transaction([&](catalog::Tx& tx) {
          return tx.Exec("DELETE FROM versions WHERE id = ? AND state = 'publishing'", {version_id})
              .status();
        })
        .IgnoreError();
    return std::move(r).status();
  }
  repo::AddResult published = std::move(*r);
  core::CrashPoint("site.version_signed");
  return published;
}

// The bytes of `m`'s chunks that the package's newest active version before it
// lacks (all of them for a first version); nullopt when that version's manifest
// cannot be read (it is shown as unknown, not guessed).
std::optional<std::int64_t> NewBytes(SiteContext& ctx, const std::string& name,
                                     const std::vector<store::ChunkRef>& unique,
                                     const Reservation& res) {
  auto prev = ctx.db->QueryRow(
      "SELECT version, manifest_id, manifest_bytes FROM versions WHERE package_id = ? AND "
      "state = 'active' AND version < ? ORDER BY version DESC LIMIT 1",
      {res.package_id, res.version});
  std::unordered_set<store::ChunkId, store::ChunkIdHash> had;
  if (prev.ok()) {
    auto pm = LoadStoredManifest(ctx, name, prev->Int(0), prev->Text(1), prev->Int(2));
    if (!pm.ok()) return std::nullopt;
    for (const auto& c : pm->UniqueChunks()) had.insert(c.id);
  } else if (!prev.status().IsNotFound()) {
    return std::nullopt;
  }
  std::int64_t n = 0;
  for (const auto& c : unique)
    if (!had.contains(c.id)) n += c.size;
  return n;
}

// Activates the signed version in the catalog and posts its message.
Status RecordVersion(SiteContext& ctx, const std::string& name, const store::Manifest& m,
                     const Reservation& res, const repo::AddResult& published,
                     const std::vector<store::ChunkRef>& unique) {
  const std::uint64_t unique_chunks = unique.size();
  const std::optional<std::int64_t> new_bytes = NewBytes(ctx, name, unique, res);
  Json programs = Json::array();
  for (const auto& p : m.programs) programs.push_back(p.name);
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(
        std::int64_t activated,
        tx.Exec("UPDATE versions SET state = 'active', manifest_id = ?, manifest_bytes = ?, "
                "files = ?, bytes = ?, chunks = ?, programs = ?, new_bytes = ? WHERE id = ? AND "
                "state = 'publishing'",
                {published.manifest_id, published.manifest_bytes, published.stats.files,
                 published.stats.bytes, unique_chunks, Dump(programs), new_bytes, res.version_id}));
    // Recovery in another process finished it already (this one stalled past the
    // lease ttl after signing): recorded, its message posted, once.
    if (activated == 0) return Status::Ok();
    DEPOT_RETURN_IF_ERROR(SyncRecords(ctx, tx, res.package_id));
    return PostMessage(ctx, tx, core::msg::kVersionCreated, {name, res.version, {}, {}, {}},
                       {{"package", name},
                        {"version", std::to_string(res.version)},
                        {"files", std::to_string(published.stats.files)},
                        {"bytes", std::to_string(published.stats.bytes)},
                        {"manifest_id", published.manifest_id}});
  });
  if (!s.ok()) {
    // Signed but not recorded: recovery activates it (at the next housekeeping here,
    // or in another process once this one is gone).
    return s.WithContext("version " + std::to_string(res.version) + " of " + name +
                         " was signed but not recorded; restart the site to finish it");
  }
  return Status::Ok();
}

// The answer to the upload: the new version, its programs and what it orphaned.
Json CreatedVersionJson(const std::string& name, const store::Manifest& m, const Reservation& res,
                        const Json& orphaned, const repo::AddResult& published,
                        std::uint64_t unique_chunks) {
  auto programs_json = store::SerializePrograms(m.programs);  // valid: the manifest was validated
  Json program_specs = Json::parse(programs_json.ok() ? *programs_json : "[]", nullptr, false);
  return Json{{"package", name},
              {"package_id", res.uid},
              {"version", res.version},
              {"programs", program_specs.is_discarded() ? Json::array() : program_specs},
              {"orphaned_deployments", orphaned},
              {"manifest_id", published.manifest_id},
              {"manifest_bytes", published.manifest_bytes},
              {"files", published.stats.files},
              {"bytes", published.stats.bytes},
              {"chunks", unique_chunks},
              {"target", published.target_path}};
}

}  // namespace

core::Result<Json> CreateVersion(SiteContext& ctx, const std::string& name, bool create,
                                 std::string_view manifest_body, bool force) {
  DEPOT_RETURN_IF_ERROR(store::ValidatePackageName(name));
  auto parsed = store::ParseManifest(manifest_body);
  if (!parsed.ok()) return std::move(parsed).status().WithContext("manifest of " + name);
  store::Manifest m = std::move(*parsed);
  DEPOT_RETURN_IF_ERROR(CheckManifestFits(ctx, name, m));
  DEPOT_ASSIGN_OR_RETURN(Json orphaned, CheckOrphans(ctx, name, m, force));
  // Chunks uploaded for this version may still be staged: make them durable and
  // visible, then check every chunk is present with its listed size (and, if
  // configured, every file re-hashed) before anything is reserved or signed.
  auto t_start = std::chrono::steady_clock::now();
  DEPOT_RETURN_IF_ERROR(
      ctx.intake->Flush().WithContext("committing the uploaded chunks of " + name));
  auto t_flushed = std::chrono::steady_clock::now();
  store::ChunkIntake* intake = ctx.intake.get();
  auto just_stored = [intake](const store::ChunkId& id, std::uint64_t size) {
    return intake->Verified(id, size);
  };
  DEPOT_RETURN_IF_ERROR(
      ctx.repo->VerifyManifestContent(m, 0, ctx.config.verify_file_hashes, just_stored));
  auto t_verified = std::chrono::steady_clock::now();

  // From reserving the number to recording the version, recovery in this process
  // leaves its reservations alone (other processes see it alive).
  ctx.reserving.fetch_add(1);
  struct Done {
    SiteContext& ctx;
    ~Done() { ctx.reserving.fetch_sub(1); }
  } done{ctx};
  Reservation res;
  DEPOT_RETURN_IF_ERROR(ReserveVersion(ctx, name, create, m, &res));
  core::CrashPoint("site.version_reserved");

  m.package_id = res.uid;
  m.version = res.version;
  m.created = core::FormatUtc(ctx.clock->Now());
  DEPOT_ASSIGN_OR_RETURN(repo::AddResult published,
                         SignVersion(ctx, m, res.version_id, just_stored));
  auto t_signed = std::chrono::steady_clock::now();
  const std::vector<store::ChunkRef> unique = m.UniqueChunks();
  const std::uint64_t unique_chunks = unique.size();
  DEPOT_RETURN_IF_ERROR(RecordVersion(ctx, name, m, res, published, unique));
  ctx.Changed();
  auto ms = [](auto a, auto b) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count());
  };
  core::Log(core::LogLevel::kInfo, "site.version_created",
            {{"package", name},
             {"version", std::to_string(res.version)},
             {"manifest", published.manifest_id},
             {"flush_ms", ms(t_start, t_flushed)},
             {"verify_ms", ms(t_flushed, t_verified)},
             {"sign_ms", ms(t_verified, t_signed)},
             {"record_ms", ms(t_signed, std::chrono::steady_clock::now())}});
  ApplyRetention(ctx);
  return CreatedVersionJson(name, m, res, orphaned, published, unique_chunks);
}

}  // namespace depot::site
