// Schema migrations: numbered, immutable SQL scripts applied in order, each in its own
// transaction together with the row that records it, so a crash leaves the schema at
// a whole version. A migration that has shipped is never edited; a change is a new
// migration. migrate_test pins the SHA-256 of every shipped script to enforce that.
//
// Portable SQL with two placeholders the runner expands per dialect:
//   {{ID}}    an auto-assigned 64-bit primary key column type
//   {{NOW}}   nothing dialect-specific yet; reserved
//
// Thread safety: Migrate may be called by several processes at once (the write lock
// serialises them; the loser sees the migration applied and skips it).
#pragma once

#include <string_view>
#include <vector>

#include "catalog/db.h"
#include "core/status.h"

namespace depot::catalog {

struct Migration {
  int version;            // 1, 2, 3... without gaps
  std::string_view name;  // short description, recorded with it
  std::string_view sql;   // one or more statements
};

// Expands the placeholders above for `dialect`.
std::string ExpandSql(std::string_view sql, Dialect dialect);

// Applies every migration newer than the database's schema version. InvalidArgument
// when the list is not numbered 1..N, or when the database is newer than this
// binary knows (an older depot must not write a newer schema); the error from the
// failing migration otherwise, with its number and name.
core::Status Migrate(Db* db, const std::vector<Migration>& migrations);

// The highest applied migration (0 for a fresh database).
core::Result<int> SchemaVersion(Db* db);

}  // namespace depot::catalog
