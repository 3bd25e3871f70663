#include "catalog/copy.h"

#include <array>
#include <cstdio>
#include <cstring>

#include "core/hex.h"
#include "core/sha256.h"

namespace depot::catalog {

using core::Status;

namespace {

// Identifiers come from the database's own catalog, never from a user: quoting is
// for names that are keywords.
std::string Quote(const std::string& name) { return "\"" + name + "\""; }

core::Result<std::vector<std::string>> Columns(Tx& tx, const std::string& table) {
  std::vector<std::string> out;
  if (tx.dialect() == Dialect::kSqlite) {
    DEPOT_ASSIGN_OR_RETURN(Rows rows,
                           tx.Query("SELECT name FROM pragma_table_info(?) ORDER BY cid", {table}));
    for (const auto& r : rows) out.push_back(r.Text(0));
  } else {
    DEPOT_ASSIGN_OR_RETURN(Rows rows, tx.Query("SELECT column_name FROM information_schema.columns "
                                               "WHERE table_schema = current_schema() AND "
                                               "table_name = ? ORDER BY ordinal_position",
                                               {table}));
    for (const auto& r : rows) out.push_back(r.Text(0));
  }
  if (out.empty()) return Status::NotFound("table " + table + " has no columns");
  return out;
}

// One value as bytes that do not depend on the backend.
void AppendCanonical(const Value& v, std::string* out) {
  if (v.is_null()) {
    *out += "n;";
  } else if (v.is_int()) {
    *out += "i" + std::to_string(v.AsInt()) + ";";
  } else if (v.is_double()) {
    char buf[40];
    std::snprintf(buf, sizeof(buf), "d%.17g;", v.AsDouble());
    *out += buf;
  } else {
    const std::string& t = *v.text();
    *out += "t" + std::to_string(t.size()) + ":" + t;
  }
}

// Every row of `table`, its columns in *columns' order.
core::Result<Rows> SelectAll(Tx& tx, const std::string& table, std::vector<std::string>* columns) {
  DEPOT_ASSIGN_OR_RETURN(*columns, Columns(tx, table));
  std::string select;
  for (const auto& c : *columns) select += (select.empty() ? "" : ", ") + Quote(c);
  return tx.Query("SELECT " + select + " FROM " + Quote(table));
}

}  // namespace

core::Result<std::vector<std::string>> ListTables(Db* db) {
  DEPOT_ASSIGN_OR_RETURN(
      Rows rows,
      db->Query(db->dialect() == Dialect::kSqlite
                    ? "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                      "'sqlite_%' ORDER BY rowid"
                    : "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                      "current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"));
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(r.Text(0));
  return out;
}

core::Result<std::map<std::string, TableDigest>> DigestTables(
    Db* db, const std::vector<std::string>& tables) {
  std::map<std::string, TableDigest> out;
  Status s = db->Transaction(
      [&](Tx& tx) -> Status {
        for (const std::string& table : tables) {
          std::vector<std::string> columns;
          DEPOT_ASSIGN_OR_RETURN(Rows rows, SelectAll(tx, table, &columns));
          // A sum of row hashes (two 64-bit lanes): the order rows come in is the
          // backend's and does not matter; each row counts once per occurrence.
          std::array<std::uint64_t, 2> sum{};
          std::string canonical;
          for (const auto& r : rows) {
            canonical.clear();
            for (std::size_t i = 0; i < columns.size(); ++i) AppendCanonical(r[i], &canonical);
            const core::Digest h = core::Sha256::Hash(canonical);
            for (int lane = 0; lane < 2; ++lane) {
              std::uint64_t x = 0;
              std::memcpy(&x, h.data() + 8 * lane, 8);
              sum[lane] += x;
            }
          }
          TableDigest d;
          d.rows = static_cast<std::int64_t>(rows.size());
          d.digest = core::ToHex(reinterpret_cast<const std::uint8_t*>(sum.data()), sizeof(sum));
          out[table] = d;
        }
        return Status::Ok();
      },
      Db::Mode::kRead);
  if (!s.ok()) return s;
  return out;
}

core::Result<std::map<std::string, std::int64_t>> CopyTables(
    Db* from, Db* to, const std::vector<std::string>& tables) {
  std::map<std::string, std::int64_t> copied;
  // Read everything first (one snapshot of the source), then write in one transaction.
  std::map<std::string, std::pair<std::vector<std::string>, Rows>> data;
  Status read = from->Transaction(
      [&](Tx& tx) -> Status {
        for (const std::string& table : tables) {
          std::vector<std::string> columns;
          DEPOT_ASSIGN_OR_RETURN(Rows rows, SelectAll(tx, table, &columns));
          data[table] = {std::move(columns), std::move(rows)};
        }
        return Status::Ok();
      },
      Db::Mode::kRead);
  if (!read.ok()) return read;
  Status written = to->Transaction([&](Tx& tx) -> Status {
    copied.clear();
    // Emptied children first (reverse creation order), filled parents first.
    for (auto it = tables.rbegin(); it != tables.rend(); ++it) {
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("DELETE FROM " + Quote(*it)).status().WithContext("emptying " + *it));
    }
    for (const std::string& table : tables) {
      const auto& [columns, rows] = data[table];
      std::string names, marks;
      for (const auto& c : columns) {
        names += (names.empty() ? "" : ", ") + Quote(c);
        marks += marks.empty() ? "?" : ", ?";
      }
      const std::string insert =
          "INSERT INTO " + Quote(table) + " (" + names + ") VALUES (" + marks + ")";
      for (const auto& r : rows) {
        Params p;
        p.reserve(columns.size());
        for (std::size_t i = 0; i < columns.size(); ++i) p.push_back(r[i]);
        DEPOT_RETURN_IF_ERROR(tx.Exec(insert, p).status().WithContext("copying " + table));
      }
      copied[table] = static_cast<std::int64_t>(rows.size());
      if (tx.dialect() == Dialect::kPostgres) {
        // Ids assigned from now on continue after the copied ones.
        DEPOT_ASSIGN_OR_RETURN(
            Rows identity,
            tx.Query("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                     "current_schema() AND table_name = ? AND is_identity = 'YES'",
                     {table}));
        for (const auto& col : identity) {
          const std::string c = col.Text(0);
          DEPOT_RETURN_IF_ERROR(
              tx.Query("SELECT setval(pg_get_serial_sequence(?, ?), (SELECT COALESCE(MAX(" +
                           Quote(c) + "), 0) FROM " + Quote(table) + ") + 1, false)",
                       {Quote(table), c})
                  .status()
                  .WithContext("moving the ids of " + table));
        }
      }
    }
    return Status::Ok();
  });
  if (!written.ok()) return written;
  return copied;
}

}  // namespace depot::catalog
