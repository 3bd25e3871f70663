// Moving a site's catalog from its SQLite file into PostgreSQL (`depot site
// migrate-db`, docs/scale-out.md): copy, verify, switch the configuration.
//
// Thread safety: run it with the site stopped (it refuses while a process of the site
// is alive); one call at a time per data directory.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/clock.h"
#include "core/env.h"
#include "core/status.h"

namespace depot::site {

struct MigrateDbResult {
  std::string from, to;                      // the databases, described without passwords
  std::map<std::string, std::int64_t> rows;  // copied and verified, per table
  std::string config_path;                   // site.toml, now naming `to`
};

// Copies the catalog of the site in `data_dir` into the empty PostgreSQL database
// `to`, verifies every table (row count and a digest of every row), and only then
// rewrites site.toml to name it (atomically). The SQLite file stays where it is, as
// the copy from before the move. Errors, with nothing switched: InvalidArgument when
// the site is already on PostgreSQL, the target is not empty, or the copy does not
// verify (naming the table), or while a process of the site runs (naming it); the
// databases' errors.
core::Result<MigrateDbResult> MigrateCatalogToPostgres(core::Env* env, core::Clock* clock,
                                                       const std::string& data_dir,
                                                       const std::string& to);

}  // namespace depot::site
