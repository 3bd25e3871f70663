// Moving a catalog between backends (`depot site migrate-db`, docs/scale-out.md):
// every row of every table copied in one transaction of the target, and a digest per
// table that is the same on both backends for the same rows, to verify the copy.
//
// Thread safety: the databases may be used by others meanwhile, but a copy of a
// catalog that is being written is not a snapshot of one moment: stop its site first.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "catalog/db.h"
#include "core/status.h"

namespace depot::catalog {

// The tables of `db` (schema_migrations included), in creation order on SQLite.
core::Result<std::vector<std::string>> ListTables(Db* db);

struct TableDigest {
  std::int64_t rows = 0;
  std::string digest;  // hex; independent of row order and of the backend
  bool operator==(const TableDigest&) const = default;
};
// The digest of each of `tables`.
core::Result<std::map<std::string, TableDigest>> DigestTables(
    Db* db, const std::vector<std::string>& tables);

// Copies every row of `tables` from `from` into `to`, whose schema must be the same
// (both migrated to one version): in one transaction of `to`, each table's rows
// replaced by `from`'s, and on PostgreSQL identity columns moved past the copied ids.
// Returns the rows copied per table. Errors from either database, naming the table.
core::Result<std::map<std::string, std::int64_t>> CopyTables(
    Db* from, Db* to, const std::vector<std::string>& tables);

}  // namespace depot::catalog
