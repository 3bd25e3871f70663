#include "catalog/outbox.h"

#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "core/json_text.h"

namespace depot::catalog {

using Json = nlohmann::json;

namespace {

struct Column {
  const char* name;
  const char* type;
  bool not_null;
  bool primary_key;
};
struct Table {
  const char* name;
  std::vector<Column> columns;
};

const std::vector<Table>& Tables() {
  static const std::vector<Table> kTables = {
      {"meta", {{"key", "TEXT", false, true}, {"value", "TEXT", true, false}}},
      {"outbox",
       {{"seq", "BIGINT", false, true},
        {"code", "BIGINT", true, false},
        {"time_ms", "BIGINT", true, false},
        {"package", "TEXT", false, false},
        {"version", "BIGINT", false, false},
        {"deployment", "BIGINT", false, false},
        {"params", "TEXT", true, false}}},
  };
  return kTables;
}

std::string Describe(const std::string& name, const std::string& type, bool not_null, bool pk) {
  return name + " " + type + (pk ? " PRIMARY KEY" : "") + (not_null ? " NOT NULL" : "");
}

}  // namespace

std::string OutboxTablesSql() {
  std::string sql;
  for (const Table& t : Tables()) {
    sql += std::string("CREATE TABLE ") + t.name + " (";
    for (std::size_t i = 0; i < t.columns.size(); ++i) {
      const Column& c = t.columns[i];
      sql += (i ? ", " : "") + Describe(c.name, c.type, c.not_null, c.primary_key);
    }
    sql += ");\n";
  }
  return sql;
}

core::Status CheckOutboxSchema(Db* db) {
  if (db->dialect() != Dialect::kSqlite)
    return core::Status::InvalidArgument("the outbox check reads SQLite's catalog");
  for (const Table& t : Tables()) {
    DEPOT_ASSIGN_OR_RETURN(Rows rows,
                           db->Query("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?)",
                                     {std::string(t.name)}));
    // In name order: a column added by a later migration comes last, and every
    // statement names its columns.
    std::set<std::string> want_set, have_set;
    for (const Column& c : t.columns)
      want_set.insert(Describe(c.name, c.type, c.not_null, c.primary_key));
    for (const auto& r : rows)
      have_set.insert(Describe(r.Text(0), r.Text(1), r.Int(2) != 0, r.Int(3) != 0));
    auto join = [](const std::set<std::string>& s) {
      std::string out;
      for (const auto& c : s) out += (out.empty() ? "" : ", ") + c;
      return out;
    };
    const std::string want = join(want_set), have = join(have_set);
    if (want != have) {
      return core::Status::Corruption(std::string("table ") + t.name + " is (" + have +
                                      ") where the outbox definition (catalog/outbox.cc) says (" +
                                      want + "): a migration drifted from it");
    }
  }
  return core::Status::Ok();
}

core::Result<std::int64_t> AppendOutbox(Tx& tx, const OutboxMessage& m) {
  Json p = Json::object();
  for (const auto& [k, v] : m.params) p[k] = v;
  DEPOT_ASSIGN_OR_RETURN(
      std::int64_t seq,
      tx.QueryInt(
          "SELECT COALESCE((SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'next_seq'), 1)"));
  DEPOT_RETURN_IF_ERROR(
      tx.Exec("INSERT INTO meta (key, value) VALUES ('next_seq', ?) ON CONFLICT (key) DO "
              "UPDATE SET value = excluded.value",
              {std::to_string(seq + 1)})
          .status());
  DEPOT_RETURN_IF_ERROR(
      tx.Exec("INSERT INTO outbox (seq, code, time_ms, package, version, deployment, params) "
              "VALUES (?, ?, ?, ?, ?, "
              "?, ?)",
              {seq, m.code, m.time_ms, m.package.empty() ? Value() : Value(m.package),
               m.version == 0 ? Value() : Value(m.version),
               m.deployment == 0 ? Value() : Value(m.deployment), core::DumpJson(p)})
          .status());
  return seq;
}

core::Result<OutboxBatch> ReadOutbox(Db* db, std::size_t limit) {
  DEPOT_ASSIGN_OR_RETURN(
      Rows rows, db->Query("SELECT seq, code, time_ms, package, version, deployment, params FROM "
                           "outbox ORDER BY seq LIMIT ?",
                           {static_cast<std::int64_t>(limit)}));
  Json msgs = Json::array();
  OutboxBatch b;
  for (const auto& r : rows) {
    Json m = {{"seq", r.Int(0)}, {"code", r.Int(1)}, {"time_ms", r.Int(2)}};
    if (!r.IsNull(3)) m["package"] = r.Text(3);
    if (!r.IsNull(4)) m["version"] = r.Int(4);
    if (!r.IsNull(5)) m["deployment"] = r.Int(5);
    Json p = Json::parse(r.Text(6), nullptr, false);
    m["params"] = p.is_discarded() ? Json::object() : p;
    msgs.push_back(std::move(m));
    b.last_seq = r.Int(0);
  }
  b.count = rows.size();
  b.json = core::DumpJson(msgs);
  return b;
}

core::Status AckOutbox(Db* db, std::int64_t last_seq) {
  return db->Transaction(
      [&](Tx& tx) { return tx.Exec("DELETE FROM outbox WHERE seq <= ?", {last_seq}).status(); });
}

core::Result<std::int64_t> OutboxDepth(Db* db) {
  return db->QueryInt("SELECT COUNT(*) FROM outbox");
}

}  // namespace depot::catalog
