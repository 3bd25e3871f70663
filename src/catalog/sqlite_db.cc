// The SQLite backend of catalog::Db. SQLite result codes become Status values here
// and nowhere else (SqliteStatus).
#include <sqlite3.h>

#include <chrono>
#include <unordered_map>

#include "catalog/conn_pool.h"
#include "catalog/db.h"

namespace depot::catalog {
namespace {

using core::Status;

// The one conversion of SQLite result codes.
Status SqliteStatus(int rc, sqlite3* db, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable(std::move(msg) + " (the catalog is busy; retry)");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(std::move(msg) + " (restore the catalog from a backup)");
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
    case SQLITE_CANTOPEN:
      return Status::PermissionDenied(std::move(msg));
    case SQLITE_CONSTRAINT:
    case SQLITE_ERROR:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG:
      return Status::InvalidArgument(std::move(msg));
    default:
      return Status::IOError(std::move(msg));
  }
}

struct Conn {
  sqlite3* db = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*> stmts;
  ~Conn() {
    for (auto& [sql, stmt] : stmts) sqlite3_finalize(stmt);
    if (db != nullptr) sqlite3_close_v2(db);
  }
};

class SqliteTx final : public Tx {
 public:
  explicit SqliteTx(Conn* conn) : conn_(conn) {}
  Dialect dialect() const override { return Dialect::kSqlite; }

  core::Result<Rows> Query(std::string_view sql, const Params& params) override {
    Rows rows;
    DEPOT_RETURN_IF_ERROR(Run(sql, params, &rows));
    return rows;
  }

  core::Result<std::int64_t> Exec(std::string_view sql, const Params& params) override {
    DEPOT_RETURN_IF_ERROR(Run(sql, params, nullptr));
    return static_cast<std::int64_t>(sqlite3_changes64(conn_->db));
  }

  Status ExecScript(std::string_view sql) override {
    std::string text(sql);
    char* err = nullptr;
    int rc = sqlite3_exec(conn_->db, text.c_str(), nullptr, nullptr, &err);
    if (err != nullptr) sqlite3_free(err);
    if (rc != SQLITE_OK) return SqliteStatus(rc, conn_->db, "sql script");
    return Status::Ok();
  }

 private:
  core::Result<sqlite3_stmt*> Prepare(std::string_view sql) {
    std::string key(sql);
    auto it = conn_->stmts.find(key);
    if (it != conn_->stmts.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(conn_->db, key.data(), static_cast<int>(key.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      return SqliteStatus(rc, conn_->db, "prepare `" + key.substr(0, 120) + "`");
    }
    conn_->stmts.emplace(std::move(key), stmt);
    return stmt;
  }

  Status Run(std::string_view sql, const Params& params, Rows* rows) {
    DEPOT_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(sql));
    struct Reset {
      sqlite3_stmt* s;
      ~Reset() {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
      }
    } reset{stmt};
    if (static_cast<int>(params.size()) != sqlite3_bind_parameter_count(stmt)) {
      return Status::InvalidArgument("sql `" + std::string(sql.substr(0, 120)) + "` wants " +
                                     std::to_string(sqlite3_bind_parameter_count(stmt)) +
                                     " parameters, got " + std::to_string(params.size()));
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Value& v = params[i];
      int idx = static_cast<int>(i + 1);
      int rc;
      if (v.is_null()) {
        rc = sqlite3_bind_null(stmt, idx);
      } else if (v.is_int()) {
        rc = sqlite3_bind_int64(stmt, idx, v.AsInt());
      } else if (v.is_double()) {
        rc = sqlite3_bind_double(stmt, idx, v.AsDouble());
      } else {
        const std::string* t = v.text();
        rc = sqlite3_bind_text64(stmt, idx, t->data(), t->size(), SQLITE_STATIC, SQLITE_UTF8);
      }
      if (rc != SQLITE_OK) return SqliteStatus(rc, conn_->db, "bind");
    }
    for (;;) {
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) return Status::Ok();
      if (rc != SQLITE_ROW) {
        return SqliteStatus(rc, conn_->db, "sql `" + std::string(sql.substr(0, 120)) + "`");
      }
      if (rows == nullptr) continue;
      int n = sqlite3_column_count(stmt);
      std::vector<Value> values;
      values.reserve(n);
      for (int c = 0; c < n; ++c) {
        switch (sqlite3_column_type(stmt, c)) {
          case SQLITE_NULL:
            values.emplace_back();
            break;
          case SQLITE_INTEGER:
            values.emplace_back(static_cast<std::int64_t>(sqlite3_column_int64(stmt, c)));
            break;
          case SQLITE_FLOAT:
            values.emplace_back(sqlite3_column_double(stmt, c));
            break;
          default: {
            const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
            int len = sqlite3_column_bytes(stmt, c);
            values.emplace_back(std::string(p != nullptr ? p : "", len));
          }
        }
      }
      rows->emplace_back(std::move(values));
    }
  }

  Conn* conn_;
};

class SqliteDb final : public Db {
 public:
  SqliteDb(std::string path, DbOptions options) : path_(std::move(path)), options_(options) {}

  Dialect dialect() const override { return Dialect::kSqlite; }
  std::string Describe() const override { return "sqlite:" + path_; }

  core::Result<std::unique_ptr<Conn>> Connect() {
    auto conn = std::make_unique<Conn>();
    int rc =
        sqlite3_open_v2(path_.c_str(), &conn->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) return SqliteStatus(rc, conn->db, "open catalog " + path_);
    sqlite3_extended_result_codes(conn->db, 1);
    sqlite3_busy_timeout(conn->db, static_cast<int>(options_.busy_timeout_ms));
    // WAL: readers never block the writer nor each other. synchronous=FULL: a commit
    // that returned is on disk. foreign_keys: the schema's references are enforced.
    const char* setup =
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
        "PRAGMA temp_store=MEMORY;";
    char* err = nullptr;
    rc = sqlite3_exec(conn->db, setup, nullptr, nullptr, &err);
    if (err != nullptr) sqlite3_free(err);
    if (rc != SQLITE_OK) return SqliteStatus(rc, conn->db, "open catalog " + path_);
    return conn;
  }

  Status Transaction(const std::function<Status(Tx&)>& fn, Mode mode) override {
    DEPOT_ASSIGN_OR_RETURN(auto conn, pool_.Acquire());
    Status result = RetryWhileBusy(clock_, options_.busy_timeout_ms, [&](bool* again) {
      Status s = Once(conn.get(), fn, mode);
      *again = s.IsUnavailable();
      return s;
    });
    bool healthy = sqlite3_get_autocommit(conn->db) != 0;
    pool_.Release(std::move(conn), healthy);
    return result;
  }

 private:
  Status Once(Conn* conn, const std::function<Status(Tx&)>& fn, Mode mode) {
    const char* begin = mode == Mode::kWrite ? "BEGIN IMMEDIATE" : "BEGIN";
    int rc = sqlite3_exec(conn->db, begin, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return SqliteStatus(rc, conn->db, "begin transaction");
    SqliteTx tx(conn);
    Status s = fn(tx);
    if (s.ok()) {
      rc = sqlite3_exec(conn->db, "COMMIT", nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) return s;
      s = SqliteStatus(rc, conn->db, "commit");
    }
    if (sqlite3_get_autocommit(conn->db) == 0) {
      sqlite3_exec(conn->db, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    return s;
  }

  // A lock of this process's threads: an SQLite catalog has one process.
  class LocalLock final : public NamedLock {
   public:
    explicit LocalLock(std::mutex* mu) : lock_(*mu) {}

   private:
    std::unique_lock<std::mutex> lock_;
  };

 public:
  Status Notify(std::string_view message) override {
    DEPOT_RETURN_IF_ERROR(CheckMessage(message));
    Deliver(message);
    return Status::Ok();
  }

  core::Result<std::unique_ptr<NamedLock>> Lock(std::string_view name) override {
    std::mutex* mu = nullptr;
    {
      std::lock_guard<std::mutex> guard(locks_mu_);
      auto& slot = locks_[std::string(name)];
      if (!slot) slot = std::make_unique<std::mutex>();
      mu = slot.get();
    }
    return std::unique_ptr<NamedLock>(std::make_unique<LocalLock>(mu));
  }

 private:
  std::mutex locks_mu_;
  std::unordered_map<std::string, std::unique_ptr<std::mutex>> locks_;  // never shrinks

  std::string path_;
  DbOptions options_;
  core::Clock* clock_ = options_.clock != nullptr ? options_.clock : core::Clock::Real();
  ConnPool<Conn> pool_{options_.max_connections, [this] { return Connect(); }};
};

}  // namespace

core::Result<std::unique_ptr<Db>> Db::OpenSqlite(const std::string& path,
                                                 const DbOptions& options) {
  auto db = std::make_unique<SqliteDb>(path, options);
  // Open one connection now so a bad path or a non-database file fails here, with
  // a message naming it, rather than at the first request.
  Status s = db->Transaction([](Tx& tx) { return tx.Query("SELECT 1").status(); }, Db::Mode::kRead);
  if (!s.ok()) return s;
  return std::unique_ptr<Db>(std::move(db));
}

}  // namespace depot::catalog
