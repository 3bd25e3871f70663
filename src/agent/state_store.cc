#include "agent/state_store.h"

#include <nlohmann/json.hpp>

#include "catalog/migrate.h"
#include "core/json_text.h"

namespace depot::agent {

using core::Status;
using Json = nlohmann::json;

namespace {

constexpr std::string_view kStateMigration1 = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- One row per deployment in (or recently in) the policy, at the version it works on.
-- policy: the policy's item for it (sources, windows, start, deadline) as JSON.
-- removed_ms: when it left the policy; its content is purged purge_grace later.
CREATE TABLE deployments (
  id BIGINT PRIMARY KEY,
  package TEXT NOT NULL,
  package_id TEXT NOT NULL,
  version BIGINT NOT NULL,
  manifest_id TEXT NOT NULL,
  program TEXT NOT NULL,
  kind TEXT NOT NULL,
  policy TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  next_try_ms BIGINT NOT NULL DEFAULT 0,
  requested BIGINT NOT NULL DEFAULT 0,
  run_dir TEXT,
  run_started_ms BIGINT,
  exit_code BIGINT,
  output TEXT,
  last_error TEXT,
  bytes_done BIGINT NOT NULL DEFAULT 0,
  bytes_total BIGINT NOT NULL DEFAULT 0,
  report_seq BIGINT NOT NULL DEFAULT 0,
  reported_seq BIGINT NOT NULL DEFAULT 0,
  removed_ms BIGINT,
  updated_ms BIGINT NOT NULL
);
-- Programs that succeeded: never run again for this deployment and version.
CREATE TABLE succeeded (
  deployment BIGINT NOT NULL,
  version BIGINT NOT NULL,
  exit_code BIGINT,
  time_ms BIGINT NOT NULL,
  PRIMARY KEY (deployment, version)
);
-- The content in use per package (the newest version whose program succeeded).
CREATE TABLE installed (
  package TEXT PRIMARY KEY,
  version BIGINT NOT NULL,
  manifest_id TEXT NOT NULL,
  time_ms BIGINT NOT NULL
);
-- Versions whose manifest the agent keeps (manifests/<id>.json): what the cache's
-- chunks belong to, for pinning and least-recently-used eviction.
CREATE TABLE held (
  manifest_id TEXT PRIMARY KEY,
  package TEXT NOT NULL,
  version BIGINT NOT NULL,
  last_used_ms BIGINT NOT NULL
);
CREATE TABLE outbox (
  seq BIGINT PRIMARY KEY,
  code BIGINT NOT NULL,
  time_ms BIGINT NOT NULL,
  package TEXT,
  version BIGINT,
  deployment BIGINT,
  params TEXT NOT NULL
);
)sql";

const std::vector<catalog::Migration>& Migrations() {
  static const std::vector<catalog::Migration> kMigrations = {{1, "agent state", kStateMigration1}};
  return kMigrations;
}

constexpr char kColumns[] =
    "id, package, package_id, version, manifest_id, program, kind, policy, state, attempts, "
    "next_try_ms, "
    "requested, run_dir, run_started_ms, removed_ms, bytes_done, bytes_total, exit_code, "
    "last_error, output";

// The schedule and sources of a policy item, as the driver needs them.
void ReadPolicy(const std::string& text, Deployment* d) {
  Json policy = Json::parse(text, nullptr, false);
  if (!policy.is_object()) return;
  d->start_ms = policy.value("start_ms", std::int64_t{0});
  d->policy_bytes = policy.value("bytes", std::int64_t{0});
  if (policy.contains("deadline_ms") && policy["deadline_ms"].is_number_integer()) {
    d->deadline_ms = policy["deadline_ms"].get<std::int64_t>();
  }
  if (policy.contains("sources") && policy["sources"].is_array()) {
    for (const auto& s : policy["sources"]) {
      if (!s.is_object() || !s.contains("url") || !s["url"].is_string()) continue;
      d->sources.push_back({s.value("kind", ""), s.value("name", ""), s["url"].get<std::string>()});
    }
  }
  if (policy.contains("windows") && policy["windows"].is_array()) {
    for (const auto& w : policy["windows"]) {
      if (!w.is_object()) continue;
      auto start = core::ParseClock(w.value("start", ""));
      if (!start.ok()) continue;
      d->windows.push_back(
          {*start, w.value("duration_s", std::int64_t{0}), w.value("tz", std::string("UTC"))});
    }
  }
}

Deployment ToDeployment(const catalog::Row& r) {
  Deployment d;
  d.id = r.Int(0);
  d.package = r.Text(1);
  d.package_id = r.Text(2);
  d.version = r.Int(3);
  d.manifest_id = r.Text(4);
  d.program = r.Text(5);
  d.kind = r.Text(6);
  ReadPolicy(r.Text(7), &d);
  d.state = ParseState(r.Text(8)).value_or(State::kWaiting);
  d.attempts = r.Int(9);
  d.next_try_ms = r.Int(10);
  d.requested = r.Int(11) != 0;
  d.run_dir = r.Text(12);
  d.run_started_ms = r.Int(13);
  d.removed = !r.IsNull(14);
  d.bytes_done = r.Int(15);
  d.bytes_total = r.Int(16);
  d.exit_code = r.OptInt(17);
  d.last_error = r.Text(18);
  d.output = r.Text(19);
  return d;
}

core::Result<std::vector<Deployment>> ToDeployments(core::Result<catalog::Rows> rows) {
  DEPOT_RETURN_IF_ERROR(rows.status());
  std::vector<Deployment> out;
  for (const auto& r : *rows) out.push_back(ToDeployment(r));
  return out;
}

// The next sequence number for deployment reports (the site keeps the newest).
core::Result<std::int64_t> NextReportSeq(catalog::Tx& tx) {
  DEPOT_ASSIGN_OR_RETURN(std::int64_t seq,
                         tx.QueryInt("SELECT COALESCE((SELECT CAST(value AS BIGINT) FROM meta "
                                     "WHERE key = 'report_seq'), 0) + 1"));
  DEPOT_RETURN_IF_ERROR(
      tx.Exec("INSERT INTO meta (key, value) VALUES ('report_seq', ?) ON CONFLICT (key) DO UPDATE "
              "SET value = excluded.value",
              {std::to_string(seq)})
          .status());
  return seq;
}

catalog::Value OptText(const std::optional<std::string>& s) {
  return s ? catalog::Value(*s) : catalog::Value();
}
catalog::Value OptInt(const std::optional<std::int64_t>& v) {
  return v ? catalog::Value(*v) : catalog::Value();
}

}  // namespace

catalog::OutboxMessage DeploymentMessage(core::Clock* clock, int code, const Deployment& d,
                                         std::map<std::string, std::string> params) {
  return {code, core::UnixMillis(clock->Now()), d.package, d.version, d.id, std::move(params)};
}

core::Result<std::unique_ptr<StateStore>> StateStore::Open(core::Clock* clock,
                                                           const std::string& path) {
  DEPOT_ASSIGN_OR_RETURN(auto db, catalog::Db::OpenSqlite(path));
  DEPOT_RETURN_IF_ERROR(catalog::Migrate(db.get(), Migrations()));
  DEPOT_RETURN_IF_ERROR(catalog::CheckOutboxSchema(db.get()));
  return std::unique_ptr<StateStore>(new StateStore(clock, std::move(db)));
}

core::Result<std::optional<Deployment>> StateStore::Get(std::int64_t id) {
  auto row =
      db_->QueryRow(std::string("SELECT ") + kColumns + " FROM deployments WHERE id = ?", {id});
  if (!row.ok()) {
    if (row.status().IsNotFound()) return std::optional<Deployment>();
    return row.status();
  }
  return std::optional<Deployment>(ToDeployment(*row));
}

core::Result<std::vector<Deployment>> StateStore::Live() {
  return ToDeployments(db_->Query(std::string("SELECT ") + kColumns +
                                  " FROM deployments WHERE removed_ms IS NULL ORDER BY id"));
}

core::Result<std::vector<Deployment>> StateStore::All() {
  return ToDeployments(
      db_->Query(std::string("SELECT ") + kColumns + " FROM deployments ORDER BY id"));
}

core::Result<std::vector<Deployment>> StateStore::RemovedBefore(std::int64_t cutoff_ms) {
  return ToDeployments(db_->Query(
      std::string("SELECT ") + kColumns +
          " FROM deployments WHERE removed_ms IS NOT NULL AND removed_ms <= ? ORDER BY id",
      {cutoff_ms}));
}

Status StateStore::Insert(const PolicyItem& p) {
  return db_->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t seq, NextReportSeq(tx));
    return tx
        .Exec(
            "INSERT INTO deployments (id, package, package_id, version, manifest_id, program, "
            "kind, policy, state, "
            "report_seq, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'waiting', ?, ?)",
            {p.id, p.package, p.package_id, p.version, p.manifest_id, p.program, p.kind,
             p.policy_json, seq, NowMs()})
        .status();
  });
}

Status StateStore::Refresh(const PolicyItem& p) {
  return db_->Transaction([&](catalog::Tx& tx) {
    return tx
        .Exec(
            "UPDATE deployments SET program = ?, kind = ?, policy = ?, removed_ms = NULL WHERE id "
            "= ?",
            {p.program, p.kind, p.policy_json, p.id})
        .status();
  });
}

Status StateStore::ApplyChanges(catalog::Tx& tx, const Deployment& d, const Changes& c) {
  const std::int64_t id = d.id;
  auto set = [&](const std::string& assignments, catalog::Params params) {
    params.push_back(id);
    return tx.Exec("UPDATE deployments SET " + assignments + " WHERE id = ?", params).status();
  };
  if (c.new_version) {
    const PolicyItem& p = *c.new_version;
    DEPOT_RETURN_IF_ERROR(set(
        "version = ?, manifest_id = ?, program = ?, kind = ?, policy = ?, package_id = ?, "
        "attempts = 0, next_try_ms = 0, run_dir = NULL, run_started_ms = NULL, exit_code = NULL, "
        "output = NULL, last_error = NULL, bytes_done = 0, bytes_total = 0, removed_ms = NULL",
        {p.version, p.manifest_id, p.program, p.kind, p.policy_json, p.package_id}));
  }
  if (c.attempts) DEPOT_RETURN_IF_ERROR(set("attempts = ?", {*c.attempts}));
  if (c.next_try_ms) DEPOT_RETURN_IF_ERROR(set("next_try_ms = ?", {*c.next_try_ms}));
  if (c.set_error) DEPOT_RETURN_IF_ERROR(set("last_error = ?", {OptText(c.error)}));
  if (c.set_exit)
    DEPOT_RETURN_IF_ERROR(set("exit_code = ?, output = ?", {OptInt(c.exit_code), c.output}));
  if (c.clear_run) DEPOT_RETURN_IF_ERROR(set("run_dir = NULL, run_started_ms = NULL", {}));
  const std::int64_t now = NowMs();
  if (c.downloaded) {
    DEPOT_RETURN_IF_ERROR(
        set("manifest_id = ?, bytes_done = ?, bytes_total = ?",
            {c.downloaded->manifest_id, c.downloaded->bytes, c.downloaded->bytes}));
    DEPOT_RETURN_IF_ERROR(
        tx.Exec(
              "INSERT INTO held (manifest_id, package, version, last_used_ms) VALUES (?, ?, ?, ?) "
              "ON CONFLICT (manifest_id) DO UPDATE SET last_used_ms = excluded.last_used_ms",
              {c.downloaded->manifest_id, d.package, d.version, now})
            .status());
  }
  if (c.installed) {
    DEPOT_RETURN_IF_ERROR(
        tx.Exec(
              "INSERT INTO succeeded (deployment, version, exit_code, time_ms) VALUES (?, ?, ?, ?) "
              "ON CONFLICT (deployment, version) DO NOTHING",
              {id, d.version, OptInt(c.exit_code), now})
            .status());
    DEPOT_RETURN_IF_ERROR(
        tx.Exec(
              "INSERT INTO installed (package, version, manifest_id, time_ms) VALUES (?, ?, ?, ?) "
              "ON CONFLICT (package) DO UPDATE SET version = excluded.version, manifest_id = "
              "excluded.manifest_id, time_ms = excluded.time_ms WHERE installed.version <= "
              "excluded.version",
              {d.package, d.version, d.manifest_id, now})
            .status());
  }
  return Status::Ok();
}

core::Result<std::optional<State>> StateStore::Transition(
    std::int64_t id, Event event, const Changes& changes,
    const std::vector<catalog::OutboxMessage>& messages) {
  std::optional<State> result;
  Status s = db_->Transaction([&](catalog::Tx& tx) -> Status {
    result.reset();
    DEPOT_ASSIGN_OR_RETURN(
        auto row,
        tx.QueryRow(std::string("SELECT ") + kColumns + " FROM deployments WHERE id = ?", {id}));
    Deployment d = ToDeployment(row);
    auto from = ParseState(row.Text(8));
    if (!from)
      return Status::Corruption("deployment " + std::to_string(id) + " has unknown state " +
                                row.Text(8));
    auto to = Next(*from, event);
    if (!to) return Status::Ok();
    DEPOT_ASSIGN_OR_RETURN(std::int64_t seq, NextReportSeq(tx));
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("UPDATE deployments SET state = ?, report_seq = ?, updated_ms = ? WHERE id = ?",
                {std::string(StateName(*to)), seq, NowMs(), id})
            .status());
    DEPOT_RETURN_IF_ERROR(ApplyChanges(tx, d, changes));
    for (const auto& m : messages) DEPOT_RETURN_IF_ERROR(catalog::AppendOutbox(tx, m).status());
    result = *to;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return result;
}

Status StateStore::MarkRemoved(std::int64_t id, const catalog::OutboxMessage& message) {
  return db_->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("UPDATE deployments SET removed_ms = ? WHERE id = ?", {NowMs(), id}).status());
    return catalog::AppendOutbox(tx, message).status();
  });
}

Status StateStore::Delete(std::int64_t id) {
  return db_->Transaction([&](catalog::Tx& tx) {
    return tx.Exec("DELETE FROM deployments WHERE id = ?", {id}).status();
  });
}

Status StateStore::SetRun(std::int64_t id, const std::string& run_dir, std::int64_t started_ms) {
  return db_->Transaction([&](catalog::Tx& tx) {
    return tx
        .Exec("UPDATE deployments SET run_dir = ?, run_started_ms = ? WHERE id = ?",
              {run_dir, started_ms, id})
        .status();
  });
}

Status StateStore::SetProgress(std::int64_t id, std::uint64_t done, std::uint64_t total) {
  return db_->Transaction([&](catalog::Tx& tx) {
    return tx
        .Exec("UPDATE deployments SET bytes_done = ?, bytes_total = ? WHERE id = ?",
              {done, total, id})
        .status();
  });
}

Status StateStore::SetNextTry(std::int64_t id, std::int64_t next_try_ms) {
  return db_->Transaction([&](catalog::Tx& tx) {
    return tx.Exec("UPDATE deployments SET next_try_ms = ? WHERE id = ?", {next_try_ms, id})
        .status();
  });
}

Status StateStore::ClampRetries(std::int64_t latest_ms) {
  return db_->Transaction([&](catalog::Tx& tx) {
    return tx
        .Exec("UPDATE deployments SET next_try_ms = ? WHERE next_try_ms > ?",
              {latest_ms, latest_ms})
        .status();
  });
}

core::Result<std::int64_t> StateStore::Request(const std::string& package) {
  std::int64_t n = 0;
  DEPOT_RETURN_IF_ERROR(db_->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(
        n, tx.Exec("UPDATE deployments SET requested = 1 WHERE package = ? AND kind = 'available' "
                   "AND removed_ms IS NULL",
                   {package}));
    return Status::Ok();
  }));
  return n;
}

core::Result<bool> StateStore::Succeeded(std::int64_t id, std::int64_t version) {
  DEPOT_ASSIGN_OR_RETURN(std::int64_t n,
                         db_->QueryInt("SELECT COUNT(*) FROM succeeded WHERE deployment = ? AND "
                                       "version = ?",
                                       {id, version}));
  return n > 0;
}

core::Result<bool> StateStore::ContentInUse(const Deployment& d) {
  DEPOT_ASSIGN_OR_RETURN(std::int64_t n,
                         db_->QueryInt("SELECT (SELECT COUNT(*) FROM installed WHERE package = ? "
                                       "AND version = ?) + (SELECT COUNT(*) FROM "
                                       "deployments WHERE package = ? AND version = ? AND id != ? "
                                       "AND removed_ms IS NULL AND state IN "
                                       "('downloaded', 'installing', 'succeeded'))",
                                       {d.package, d.version, d.package, d.version, d.id}));
  return n > 0;
}

core::Result<std::optional<std::int64_t>> StateStore::InstalledVersion(const std::string& package) {
  auto row = db_->QueryRow("SELECT version FROM installed WHERE package = ?", {package});
  if (!row.ok()) {
    if (row.status().IsNotFound()) return std::optional<std::int64_t>();
    return row.status();
  }
  return std::optional<std::int64_t>(row->Int(0));
}

core::Result<std::vector<std::pair<std::string, std::int64_t>>> StateStore::Installed() {
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                         db_->Query("SELECT package, version FROM installed ORDER BY package"));
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (const auto& r : rows) out.emplace_back(r.Text(0), r.Int(1));
  return out;
}

Status StateStore::Uninstall(const std::string& package) {
  return db_->Transaction([&](catalog::Tx& tx) {
    return tx.Exec("DELETE FROM installed WHERE package = ?", {package}).status();
  });
}

namespace {
core::Result<std::vector<HeldVersion>> ToHeld(core::Result<catalog::Rows> rows) {
  DEPOT_RETURN_IF_ERROR(rows.status());
  std::vector<HeldVersion> out;
  for (const auto& r : *rows) out.push_back({r.Text(0), r.Text(1), r.Int(2), r.Int(3)});
  return out;
}
}  // namespace

core::Result<std::vector<HeldVersion>> StateStore::Held() {
  return ToHeld(db_->Query(
      "SELECT manifest_id, package, version, last_used_ms FROM held ORDER BY last_used_ms"));
}

core::Result<std::vector<HeldVersion>> StateStore::HeldOf(const std::string& package) {
  return ToHeld(db_->Query(
      "SELECT manifest_id, package, version, last_used_ms FROM held WHERE package = ? ORDER BY "
      "last_used_ms",
      {package}));
}

Status StateStore::Forget(const std::string& manifest_id) {
  return db_->Transaction([&](catalog::Tx& tx) {
    return tx.Exec("DELETE FROM held WHERE manifest_id = ?", {manifest_id}).status();
  });
}

core::Result<std::set<std::string>> StateStore::Pinned() {
  std::set<std::string> pinned;
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows inst, db_->Query("SELECT manifest_id FROM installed"));
  for (const auto& r : inst) pinned.insert(r.Text(0));
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows live,
                         db_->Query("SELECT manifest_id FROM deployments WHERE removed_ms IS NULL "
                                    "AND state NOT IN ('succeeded', 'failed_final')"));
  for (const auto& r : live) pinned.insert(r.Text(0));
  return pinned;
}

core::Result<std::set<std::int64_t>> StateStore::VersionsInUse(const std::string& package) {
  std::set<std::int64_t> keep;
  DEPOT_ASSIGN_OR_RETURN(auto installed, InstalledVersion(package));
  if (installed) keep.insert(*installed);
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows live,
                         db_->Query("SELECT version FROM deployments WHERE package = ? AND "
                                    "removed_ms IS NULL AND state NOT IN ('succeeded', "
                                    "'failed_final')",
                                    {package}));
  for (const auto& r : live) keep.insert(r.Int(0));
  return keep;
}

core::Result<std::int64_t> StateStore::DeploymentsOf(const std::string& package) {
  return db_->QueryInt("SELECT COUNT(*) FROM deployments WHERE package = ?", {package});
}

Status StateStore::Post(const catalog::OutboxMessage& m) {
  return db_->Transaction([&](catalog::Tx& tx) { return catalog::AppendOutbox(tx, m).status(); });
}

core::Result<catalog::OutboxBatch> StateStore::PendingMessages(std::size_t limit) {
  return catalog::ReadOutbox(db_.get(), limit);
}

Status StateStore::AckMessages(std::int64_t last_seq) {
  return catalog::AckOutbox(db_.get(), last_seq);
}

core::Result<std::int64_t> StateStore::OutboxDepth() { return catalog::OutboxDepth(db_.get()); }

core::Result<std::vector<Report>> StateStore::PendingReports(std::size_t limit) {
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows rows,
      db_->Query("SELECT id, report_seq, state, version, exit_code, last_error, next_try_ms FROM "
                 "deployments WHERE report_seq > reported_seq AND removed_ms IS NULL LIMIT ?",
                 {static_cast<std::int64_t>(limit)}));
  std::vector<Report> out;
  for (const auto& r : rows) {
    Report rep;
    rep.deployment = r.Int(0);
    rep.seq = r.Int(1);
    rep.state = ParseState(r.Text(2)).value_or(State::kWaiting);
    rep.version = r.Int(3);
    rep.exit_code = r.OptInt(4);
    rep.detail = r.Text(5);
    rep.next_try_ms = r.Int(6);
    out.push_back(std::move(rep));
  }
  return out;
}

Status StateStore::MarkReported(const std::vector<Report>& reports) {
  return db_->Transaction([&](catalog::Tx& tx) -> Status {
    for (const auto& r : reports) {
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("UPDATE deployments SET reported_seq = ? WHERE id = ? AND reported_seq < ?",
                  {r.seq, r.deployment, r.seq})
              .status());
    }
    return Status::Ok();
  });
}

core::Result<std::optional<std::string>> StateStore::Meta(const std::string& key) {
  auto row = db_->QueryRow("SELECT value FROM meta WHERE key = ?", {key});
  if (!row.ok()) {
    if (row.status().IsNotFound()) return std::optional<std::string>();
    return row.status();
  }
  return std::optional<std::string>(row->Text(0));
}

Status StateStore::SetMeta(const std::string& key, const std::string& value) {
  return db_->Transaction([&](catalog::Tx& tx) {
    return tx
        .Exec(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
            "excluded.value",
            {key, value})
        .status();
  });
}

}  // namespace depot::agent
