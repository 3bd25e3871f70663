#include "site/migrate_db.h"

#include "catalog/copy.h"
#include "catalog/migrate.h"
#include "catalog/schema.h"
#include "core/log.h"
#include "core/path.h"
#include "site/config.h"
#include "site/processes.h"

namespace depot::site {

using core::Status;

namespace {

// InvalidArgument naming a process of the site that still runs.
Status CheckStopped(catalog::Db* db, core::Clock* clock, const SiteConfig& config) {
  const std::string host = ProcessHost();
  const std::int64_t now = core::UnixMillis(clock->Now());
  const std::int64_t ttl =
      std::chrono::duration_cast<std::chrono::milliseconds>(config.lease_ttl).count();
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                         db->Query("SELECT host, pid, seen_at, url FROM site_processes"));
  for (const auto& r : rows) {
    const bool here = r.Text(0) == host;
    const bool alive = here ? !PidGone(r.Int(1)) : r.Int(2) >= now - ttl;
    if (alive) {
      return Status::InvalidArgument("the site is running (pid " + std::to_string(r.Int(1)) +
                                     " on " + r.Text(0) +
                                     (r.Text(3).empty() ? "" : ", " + r.Text(3)) +
                                     "): stop every `depot site serve` of it, then run migrate-db "
                                     "again");
    }
  }
  return Status::Ok();
}

}  // namespace

core::Result<MigrateDbResult> MigrateCatalogToPostgres(core::Env* env, core::Clock* clock,
                                                       const std::string& data_dir,
                                                       const std::string& to) {
  MigrateDbResult out;
  out.config_path = core::JoinPath(data_dir, kSiteConfigFile);
  DEPOT_ASSIGN_OR_RETURN(SiteConfig config, LoadConfig(env, out.config_path));
  if (!config.db.empty()) {
    return Status::InvalidArgument(data_dir + ": the catalog is already in PostgreSQL (" +
                                   config.db.substr(0, config.db.find('@')) +
                                   "...); migrate-db moves an SQLite catalog");
  }
  if (to.empty())
    return Status::InvalidArgument("--to is required: a PostgreSQL connection string");
  const std::string sqlite_path = core::JoinPath(data_dir, kSiteCatalogFile);
  DEPOT_ASSIGN_OR_RETURN(auto from, catalog::Db::OpenSqlite(sqlite_path));
  // The source at this binary's schema, so both sides have the same tables.
  DEPOT_RETURN_IF_ERROR(catalog::Migrate(from.get(), catalog::SiteMigrations()));
  DEPOT_RETURN_IF_ERROR(CheckStopped(from.get(), clock, config));
  DEPOT_ASSIGN_OR_RETURN(auto dest, catalog::Db::OpenPostgres(to));
  out.from = from->Describe();
  out.to = dest->Describe();
  DEPOT_ASSIGN_OR_RETURN(int schema, catalog::SchemaVersion(dest.get()));
  if (schema != 0) {
    return Status::InvalidArgument(out.to +
                                   " is not empty (it holds a depot catalog): give "
                                   "--to a new, empty database");
  }
  DEPOT_RETURN_IF_ERROR(catalog::Migrate(dest.get(), catalog::SiteMigrations()));
  DEPOT_ASSIGN_OR_RETURN(std::vector<std::string> tables, catalog::ListTables(from.get()));
  DEPOT_ASSIGN_OR_RETURN(out.rows, catalog::CopyTables(from.get(), dest.get(), tables));
  // Verified table by table before anything is switched.
  DEPOT_ASSIGN_OR_RETURN(auto want, catalog::DigestTables(from.get(), tables));
  DEPOT_ASSIGN_OR_RETURN(auto got, catalog::DigestTables(dest.get(), tables));
  for (const std::string& t : tables) {
    if (want[t] == got[t]) continue;
    return Status::InvalidArgument(
        "the copy of table " + t + " does not verify (" + std::to_string(want[t].rows) +
        " rows in " + out.from + ", " + std::to_string(got[t].rows) + " in " + out.to +
        "); the site still uses " + out.from + ": drop and recreate " + out.to + ", then retry");
  }
  config.db = to;
  DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(out.config_path, RenderConfig(config), 0640)
                            .WithContext("switching " + out.config_path));
  core::Log(core::LogLevel::kInfo, "site.catalog_migrated", {{"from", out.from}, {"to", out.to}});
  return out;
}

}  // namespace depot::site
