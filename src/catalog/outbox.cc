#include "catalog/outbox.h"

#include <nlohmann/json.hpp>

namespace depot::catalog {

using Json = nlohmann::json;

core::Result<std::int64_t> AppendOutbox(Tx& tx, const OutboxMessage& m) {
  Json p = Json::object();
  for (const auto& [k, v] : m.params) p[k] = v;
  DEPOT_ASSIGN_OR_RETURN(
      std::int64_t seq,
      tx.QueryInt("SELECT COALESCE((SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'next_seq'), 1)"));
  DEPOT_RETURN_IF_ERROR(tx.Exec("INSERT INTO meta (key, value) VALUES ('next_seq', ?) ON CONFLICT (key) DO "
                                "UPDATE SET value = excluded.value",
                                {std::to_string(seq + 1)})
                            .status());
  DEPOT_RETURN_IF_ERROR(
      tx.Exec("INSERT INTO outbox (seq, code, time_ms, package, version, deployment, params) VALUES (?, ?, ?, ?, ?, "
              "?, ?)",
              {seq, m.code, m.time_ms, m.package.empty() ? Value() : Value(m.package),
               m.version == 0 ? Value() : Value(m.version), m.deployment == 0 ? Value() : Value(m.deployment),
               p.dump(-1, ' ', false, Json::error_handler_t::replace)})
          .status());
  return seq;
}

core::Result<OutboxBatch> ReadOutbox(Db* db, std::size_t limit) {
  DEPOT_ASSIGN_OR_RETURN(Rows rows, db->Query("SELECT seq, code, time_ms, package, version, deployment, params FROM "
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
  b.json = msgs.dump(-1, ' ', false, Json::error_handler_t::replace);
  return b;
}

core::Status AckOutbox(Db* db, std::int64_t last_seq) {
  return db->Transaction([&](Tx& tx) { return tx.Exec("DELETE FROM outbox WHERE seq <= ?", {last_seq}).status(); });
}

core::Result<std::int64_t> OutboxDepth(Db* db) { return db->QueryInt("SELECT COUNT(*) FROM outbox"); }

}  // namespace depot::catalog
