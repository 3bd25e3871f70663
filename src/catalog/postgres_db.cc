// The PostgreSQL backend of catalog::Db, through libpq. PostgreSQL errors become
// Status values here and nowhere else (PgStatus).
//
// Transactions keep the semantics the catalog's code was written against on SQLite:
// a write transaction holds the catalog's one write lock from BEGIN (a transaction-
// scoped advisory lock, so it is shared by every process on the database and released
// by COMMIT, ROLLBACK or a dropped connection), and reads see one snapshot (REPEATABLE
// READ, READ ONLY) and never wait for writers.
#include <libpq-fe.h>

#include <chrono>
#include <cstdio>

#include "catalog/conn_pool.h"
#include "catalog/db.h"
#include "catalog/postgres_conn.h"
#include "catalog/postgres_listener.h"
#include "core/random.h"

namespace depot::catalog {
namespace {

using core::Status;

// The key of the catalog's write lock (pg_advisory_xact_lock): "depot" in ASCII.
constexpr const char* kBeginWrite =
    "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock(435509555572)";
constexpr const char* kBeginRead = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

// Type OIDs of pg_type that results and parameters use.
constexpr Oid kBoolOid = 16, kInt8Oid = 20, kInt2Oid = 21, kInt4Oid = 23, kOidOid = 26,
              kFloat4Oid = 700, kFloat8Oid = 701, kNumericOid = 1700;

// `?` placeholders as PostgreSQL's `$1`, `$2`...; a `?` inside a quoted literal or
// identifier is left alone.
std::string NumberPlaceholders(std::string_view sql, int* count) {
  std::string out;
  out.reserve(sql.size() + 16);
  int& n = *count;
  n = 0;
  char quote = 0;
  for (char c : sql) {
    if (quote != 0) {
      if (c == quote) quote = 0;  // a doubled quote closes and reopens: same result
      out += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      out += c;
    } else if (c == '?') {
      out += '$' + std::to_string(++n);
    } else {
      out += c;
    }
  }
  return out;
}

Value ColumnValue(const PGresult* res, int row, int col) {
  if (PQgetisnull(res, row, col)) return Value();
  const char* v = PQgetvalue(res, row, col);
  const int len = PQgetlength(res, row, col);
  switch (PQftype(res, col)) {
    case kInt8Oid:
    case kInt2Oid:
    case kInt4Oid:
    case kOidOid:
      return Value(static_cast<std::int64_t>(std::strtoll(v, nullptr, 10)));
    case kBoolOid:
      return Value(static_cast<std::int64_t>(v[0] == 't' ? 1 : 0));
    case kFloat4Oid:
    case kFloat8Oid:
      return Value(std::strtod(v, nullptr));
    case kNumericOid:  // SUM of BIGINT: whole numbers stay integers
      if (std::string_view(v, len).find_first_of(".eE") == std::string_view::npos)
        return Value(static_cast<std::int64_t>(std::strtoll(v, nullptr, 10)));
      return Value(std::strtod(v, nullptr));
    default:
      return Value(std::string(v, len));
  }
}

class PgTx final : public Tx {
 public:
  explicit PgTx(Conn* conn) : conn_(conn) {}
  Dialect dialect() const override { return Dialect::kPostgres; }

  core::Result<Rows> Query(std::string_view sql, const Params& params) override {
    DEPOT_ASSIGN_OR_RETURN(PgResult res, Run(sql, params));
    Rows rows;
    const int n = PQntuples(res.get()), cols = PQnfields(res.get());
    rows.reserve(n);
    for (int r = 0; r < n; ++r) {
      std::vector<Value> values;
      values.reserve(cols);
      for (int c = 0; c < cols; ++c) values.push_back(ColumnValue(res.get(), r, c));
      rows.emplace_back(std::move(values));
    }
    return rows;
  }

  core::Result<std::int64_t> Exec(std::string_view sql, const Params& params) override {
    DEPOT_ASSIGN_OR_RETURN(PgResult res, Run(sql, params));
    const char* n = PQcmdTuples(res.get());
    return static_cast<std::int64_t>(n != nullptr && *n != '\0' ? std::strtoll(n, nullptr, 10) : 0);
  }

  Status ExecScript(std::string_view sql) override {
    PgResult res(PQexec(conn_->pg, std::string(sql).c_str()));
    const ExecStatusType st = PQresultStatus(res.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      return PgStatus(res.get(), conn_->pg, "sql script");
    }
    return Status::Ok();
  }

 private:
  core::Result<PgResult> Run(std::string_view sql, const Params& params) {
    int wanted = 0;
    const std::string text = NumberPlaceholders(sql, &wanted);
    if (wanted != static_cast<int>(params.size())) {
      return Status::InvalidArgument("sql `" + std::string(sql.substr(0, 120)) + "` wants " +
                                     std::to_string(wanted) + " parameters, got " +
                                     std::to_string(params.size()));
    }
    std::vector<std::string> storage(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    std::vector<Oid> types(params.size(), 0);  // 0: inferred from the statement
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Value& v = params[i];
      if (v.is_null()) continue;
      if (v.is_int()) {
        types[i] = kInt8Oid;
        storage[i] = std::to_string(v.AsInt());
      } else if (v.is_double()) {
        types[i] = kFloat8Oid;
        char buf[40];
        std::snprintf(buf, sizeof(buf), "%.17g", v.AsDouble());
        storage[i] = buf;
      } else {
        storage[i] = *v.text();
      }
      values[i] = storage[i].c_str();
    }
    PgResult res(PQexecParams(conn_->pg, text.c_str(), static_cast<int>(params.size()),
                              types.data(), values.data(), nullptr, nullptr, 0));
    const ExecStatusType st = PQresultStatus(res.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      return PgStatus(res.get(), conn_->pg, "sql `" + std::string(sql.substr(0, 120)) + "`");
    }
    return res;
  }

  Conn* conn_;
};

// The channel of the catalog's notifications; each payload is "ORIGIN|MESSAGE".
constexpr const char* kChannel = "depot_catalog";
constexpr const char* kNotifySql = "SELECT pg_notify('depot_catalog', $1)";
// Named locks: session advisory locks keyed (1684370548 = "depot" folded, hash of the
// name), a key space apart from the single-bigint write lock.
constexpr const char* kLockSql = "SELECT pg_advisory_lock(1684370548, hashtext($1))";
constexpr const char* kUnlockSql = "SELECT pg_advisory_unlock(1684370548, hashtext($1))";

class PgLock final : public NamedLock {
 public:
  PgLock(ConnPool<Conn>* pool, std::unique_ptr<Conn> conn, std::string key)
      : pool_(pool), conn_(std::move(conn)), key_(std::move(key)) {}
  ~PgLock() override {
    const char* values[1] = {key_.c_str()};
    PgResult res(PQexecParams(conn_->pg, kUnlockSql, 1, nullptr, values, nullptr, nullptr, 0));
    // Not unlocked: closing the connection releases it.
    const bool ok = PQresultStatus(res.get()) == PGRES_TUPLES_OK && !conn_->broken();
    pool_->Release(std::move(conn_), ok);
  }

 private:
  ConnPool<Conn>* pool_;
  std::unique_ptr<Conn> conn_;
  std::string key_;
};

class PgDb final : public Db {
 public:
  PgDb(std::string conninfo, DbOptions options)
      : conninfo_(std::move(conninfo)),
        described_(DescribeConninfo(conninfo_)),
        options_(options) {}

  Dialect dialect() const override { return Dialect::kPostgres; }
  std::string Describe() const override { return described_; }

  Status Notify(std::string_view message) override {
    DEPOT_RETURN_IF_ERROR(CheckMessage(message));
    Deliver(message);
    const std::string payload = origin_ + "|" + std::string(message);
    DEPOT_ASSIGN_OR_RETURN(auto conn, pool_.Acquire());
    const char* values[1] = {payload.c_str()};
    PgResult res(PQexecParams(conn->pg, kNotifySql, 1, nullptr, values, nullptr, nullptr, 0));
    Status s = PQresultStatus(res.get()) == PGRES_TUPLES_OK
                   ? Status::Ok()
                   : PgStatus(res.get(), conn->pg, "notify " + described_);
    const bool broken = conn->broken();
    pool_.Release(std::move(conn), !broken);
    return s;
  }

  void Subscribe(Subscriber fn) override {
    Db::Subscribe(std::move(fn));
    std::lock_guard<std::mutex> lock(listener_mu_);
    if (listener_) return;
    listener_ = std::make_unique<PgListener>(conninfo_, described_, kChannel, origin_, clock_,
                                             [this](std::string_view m) { Deliver(m); });
    listener_->Start();
  }

  core::Result<std::unique_ptr<NamedLock>> Lock(std::string_view name) override {
    DEPOT_ASSIGN_OR_RETURN(auto conn, lock_pool_.Acquire());
    const std::string key(name);
    const char* values[1] = {key.c_str()};
    PgResult res(PQexecParams(conn->pg, kLockSql, 1, nullptr, values, nullptr, nullptr, 0));
    if (PQresultStatus(res.get()) != PGRES_TUPLES_OK) {
      Status s = PgStatus(res.get(), conn->pg, "take the lock `" + key + "` in " + described_);
      const bool broken = conn->broken();
      lock_pool_.Release(std::move(conn), !broken);
      return s;
    }
    return std::unique_ptr<NamedLock>(std::make_unique<PgLock>(&lock_pool_, std::move(conn), key));
  }

  Status Transaction(const std::function<Status(Tx&)>& fn, Mode mode) override {
    return RetryWhileBusy(clock_, options_.busy_timeout_ms, [&](bool* again) -> Status {
      DEPOT_ASSIGN_OR_RETURN(auto conn, pool_.Acquire());
      bool may_retry = false;
      Status s = Once(conn.get(), fn, mode, &may_retry);
      const bool broken = conn->broken();
      pool_.Release(std::move(conn), !broken);
      // A connection lost before COMMIT was sent applied nothing: run it again on a
      // new one. Lost at COMMIT, the outcome is unknown and the error is returned.
      *again = s.IsUnavailable() || (broken && may_retry);
      return s;
    });
  }

 private:
  core::Result<std::unique_ptr<Conn>> Connect() { return PgConnect(conninfo_, described_); }

  // One attempt. *may_retry: nothing was committed, whatever happened.
  Status Once(Conn* conn, const std::function<Status(Tx&)>& fn, Mode mode, bool* may_retry) {
    *may_retry = true;
    PgResult begin(PQexec(conn->pg, mode == Mode::kWrite ? kBeginWrite : kBeginRead));
    const ExecStatusType bs = PQresultStatus(begin.get());
    if (bs != PGRES_COMMAND_OK && bs != PGRES_TUPLES_OK) {
      Status s = PgStatus(begin.get(), conn->pg, "begin transaction");
      Rollback(conn);
      return s;
    }
    PgTx tx(conn);
    Status s = fn(tx);
    if (s.ok()) {
      *may_retry = false;
      PgResult commit(PQexec(conn->pg, "COMMIT"));
      if (PQresultStatus(commit.get()) == PGRES_COMMAND_OK) return s;
      // A serialization failure at COMMIT rolled everything back.
      s = PgStatus(commit.get(), conn->pg, "commit");
      *may_retry = s.IsUnavailable();
      return s;
    }
    Rollback(conn);
    return s;
  }

  static void Rollback(Conn* conn) {
    if (PQtransactionStatus(conn->pg) != PQTRANS_IDLE) PgResult(PQexec(conn->pg, "ROLLBACK"));
  }

  std::string conninfo_;
  std::string described_;
  DbOptions options_;
  core::Clock* clock_ = options_.clock != nullptr ? options_.clock : core::Clock::Real();
  ConnPool<Conn> pool_{options_.max_connections, [this] { return Connect(); }};
  // Named locks hold a connection each for as long as they are held: their own pool,
  // so waiting for one never starves transactions (which the holder may need).
  ConnPool<Conn> lock_pool_{options_.max_connections, [this] { return Connect(); }};
  const std::string origin_ = core::RandomHex(8);  // tags this Db's notifications
  std::mutex listener_mu_;
  std::unique_ptr<PgListener> listener_;  // under listener_mu_; after the pools: stops first
};

}  // namespace

core::Result<std::unique_ptr<Db>> Db::OpenPostgres(const std::string& conninfo,
                                                   const DbOptions& options) {
  auto db = std::make_unique<PgDb>(conninfo, options);
  // One connection now, so a wrong address or password fails here, naming the
  // database, rather than at the first request.
  Status s = db->Transaction([](Tx& tx) { return tx.Query("SELECT 1").status(); }, Db::Mode::kRead);
  if (!s.ok()) return s;
  return std::unique_ptr<Db>(std::move(db));
}

}  // namespace depot::catalog
