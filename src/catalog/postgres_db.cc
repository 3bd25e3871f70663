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

// The one conversion of PostgreSQL errors (SQLSTATE classes, Appendix A of its manual).
Status PgStatus(const PGresult* res, PGconn* conn, std::string_view what) {
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg(what);
  msg += ": ";
  const char* text = res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(conn);
  msg += text != nullptr && *text != '\0' ? text : PQerrorMessage(conn);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  const std::string code = state != nullptr ? state : "";
  if (code == "40001" || code == "40P01" || code == "55P03" || code == "57014") {
    return Status::Unavailable(std::move(msg) + " (the catalog is busy; retry)");
  }
  if (code.rfind("08", 0) == 0 || code == "57P01" || code == "57P02" || code == "57P03" ||
      PQstatus(conn) == CONNECTION_BAD) {
    return Status::IOError(std::move(msg) + " (the connection to PostgreSQL failed)");
  }
  if (code.rfind("28", 0) == 0 || code == "42501") return Status::PermissionDenied(std::move(msg));
  if (code == "XX001" || code == "XX002") {
    return Status::Corruption(std::move(msg) + " (restore the catalog from a backup)");
  }
  if (code.rfind("53", 0) == 0 || code.rfind("58", 0) == 0) return Status::IOError(std::move(msg));
  return Status::InvalidArgument(std::move(msg));
}

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

struct Conn {
  PGconn* pg = nullptr;
  ~Conn() {
    if (pg != nullptr) PQfinish(pg);
  }
  bool broken() const { return PQstatus(pg) != CONNECTION_OK; }
};

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

// "postgresql://user@host:port/db" from a connection string, without its password.
std::string DescribeConninfo(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (err != nullptr) PQfreemem(err);
  if (opts == nullptr) return "postgresql:(unparsable connection string)";
  std::string user, host, port, db;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    std::string_view k = o->keyword;
    if (k == "user") user = o->val;
    if (k == "host") host = o->val;
    if (k == "port") port = o->val;
    if (k == "dbname") db = o->val;
  }
  PQconninfoFree(opts);
  return "postgresql://" + (user.empty() ? "" : user + "@") + host +
         (port.empty() ? "" : ":" + port) + "/" + db;
}

class PgDb final : public Db {
 public:
  PgDb(std::string conninfo, DbOptions options)
      : conninfo_(std::move(conninfo)),
        described_(DescribeConninfo(conninfo_)),
        options_(options) {}

  Dialect dialect() const override { return Dialect::kPostgres; }
  std::string Describe() const override { return described_; }

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
  core::Result<std::unique_ptr<Conn>> Connect() {
    auto conn = std::make_unique<Conn>();
    conn->pg = PQconnectdb(conninfo_.c_str());
    if (conn->pg == nullptr) return Status::IOError("connect to " + described_ + ": out of memory");
    if (PQstatus(conn->pg) != CONNECTION_OK) {
      std::string why = PQerrorMessage(conn->pg);
      while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
      const bool auth = why.find("password") != std::string::npos ||
                        why.find("authentication") != std::string::npos ||
                        why.find("role") != std::string::npos;
      std::string msg = "connect to " + described_ + ": " + why;
      if (auth) return Status::PermissionDenied(msg + " (check the user and password in --db)");
      return Status::IOError(msg + " (is PostgreSQL running and the address in --db right?)");
    }
    PQsetNoticeProcessor(
        conn->pg, [](void*, const char*) {}, nullptr);
    PgResult res(PQexec(conn->pg, "SET client_min_messages = warning; SET TIME ZONE 'UTC'"));
    if (PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
      return PgStatus(res.get(), conn->pg, "set up a connection to " + described_);
    }
    return conn;
  }

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
