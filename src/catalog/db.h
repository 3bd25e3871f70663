// The SQL seam of the catalog: a small interface over a database, so catalog code
// never sees a driver. Two backends: an embedded SQLite file (OpenSqlite,
// sqlite_db.cc) and a PostgreSQL server through libpq (OpenPostgres, postgres_db.cc).
// Nothing of sqlite3.h or libpq-fe.h appears here.
//
// SQL is written once, in the subset both run: `?` placeholders (numbered `$n` for
// PostgreSQL by its backend), BIGINT/TEXT/DOUBLE PRECISION columns,
// `INSERT ... RETURNING`, `ON CONFLICT ... DO ...`. Times are BIGINT milliseconds
// since the epoch; booleans are BIGINT 0/1; binary data is stored as lowercase hex
// TEXT.
//
// Every access goes through Db::Transaction, the one transaction helper: the function
// runs inside BEGIN ... COMMIT, and on a busy/serialization conflict the whole
// function is run again (so it must have no side effects outside the transaction, or
// only idempotent ones). There is no autocommit path, so a multi-step change can
// never be half applied.
//
// Thread safety: a Db may be used from any number of threads; each transaction takes
// a connection from a pool for its duration. A Tx belongs to the thread running the
// transaction function and must not escape it.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace depot::catalog {

enum class Dialect { kSqlite, kPostgres };

// A value bound to a placeholder or read from a column.
class Value {
 public:
  Value() = default;  // NULL
  Value(std::nullptr_t) {}
  Value(std::int64_t v) : v_(v) {}
  Value(int v) : v_(static_cast<std::int64_t>(v)) {}
  Value(unsigned v) : v_(static_cast<std::int64_t>(v)) {}
  Value(std::uint64_t v) : v_(static_cast<std::int64_t>(v)) {}
  Value(long long v) : v_(static_cast<std::int64_t>(v)) {}
  Value(bool v) : v_(static_cast<std::int64_t>(v ? 1 : 0)) {}
  Value(double v) : v_(v) {}
  Value(std::string v) : v_(std::move(v)) {}
  Value(std::string_view v) : v_(std::string(v)) {}
  Value(const char* v) : v_(std::string(v)) {}
  // An empty optional is NULL. (emplace, not assignment: GCC 12 with sanitizers sees
  // a maybe-uninitialized string in a variant move-assignment.)
  Value(const std::optional<std::int64_t>& v) {
    if (v) v_.emplace<1>(*v);
  }
  Value(const std::optional<double>& v) {
    if (v) v_.emplace<2>(*v);
  }
  Value(const std::optional<std::string>& v) {
    if (v) v_.emplace<3>(*v);
  }

  bool is_null() const { return v_.index() == 0; }
  bool is_int() const { return v_.index() == 1; }
  bool is_double() const { return v_.index() == 2; }
  bool is_text() const { return v_.index() == 3; }
  std::int64_t AsInt() const;  // 0 for NULL; text is parsed
  double AsDouble() const;     // 0 for NULL
  std::string AsText() const;  // "" for NULL; numbers are formatted
  const std::string* text() const { return std::get_if<std::string>(&v_); }

 private:
  std::variant<std::monostate, std::int64_t, double, std::string> v_;
};

using Params = std::vector<Value>;

// One result row. Column access by index; out-of-range reads return NULL.
class Row {
 public:
  explicit Row(std::vector<Value> values) : values_(std::move(values)) {}
  std::size_t size() const { return values_.size(); }
  const Value& operator[](std::size_t i) const;
  bool IsNull(std::size_t i) const { return (*this)[i].is_null(); }
  std::int64_t Int(std::size_t i) const { return (*this)[i].AsInt(); }
  double Double(std::size_t i) const { return (*this)[i].AsDouble(); }
  std::string Text(std::size_t i) const { return (*this)[i].AsText(); }
  std::optional<std::int64_t> OptInt(std::size_t i) const {
    return IsNull(i) ? std::nullopt : std::optional<std::int64_t>(Int(i));
  }
  std::optional<std::string> OptText(std::size_t i) const {
    return IsNull(i) ? std::nullopt : std::optional<std::string>(Text(i));
  }

 private:
  std::vector<Value> values_;
};

using Rows = std::vector<Row>;

// An open transaction. Errors: InvalidArgument (SQL error, constraint violation --
// the message says which), Unavailable (lock conflict; Db::Transaction retries it),
// IOError / Corruption / PermissionDenied from the database.
class Tx {
 public:
  virtual ~Tx() = default;
  virtual Dialect dialect() const = 0;
  // Runs a statement that returns rows.
  virtual core::Result<Rows> Query(std::string_view sql, const Params& params = {}) = 0;
  // Runs a statement; returns the number of rows it changed.
  virtual core::Result<std::int64_t> Exec(std::string_view sql, const Params& params = {}) = 0;
  // Runs several statements with no parameters (schema changes).
  virtual core::Status ExecScript(std::string_view sql) = 0;

  // Convenience: the first row, or NotFound when there is none.
  core::Result<Row> QueryRow(std::string_view sql, const Params& params = {});
  // Convenience: the first column of the first row as an integer (NotFound if none).
  core::Result<std::int64_t> QueryInt(std::string_view sql, const Params& params = {});
};

struct DbOptions {
  unsigned max_connections = 8;
  // How long a transaction keeps retrying lock conflicts before giving up with
  // Unavailable.
  std::int64_t busy_timeout_ms = 10'000;
  // What retries of a busy transaction wait on; nullptr: the real clock.
  core::Clock* clock = nullptr;
};

// A lock named by a string, held by this process until the object is destroyed
// (docs/scale-out.md). On PostgreSQL it is a session advisory lock on a connection of
// its own, so it excludes every process on the database and the server releases it
// when the holder dies; on SQLite (one process per catalog) it excludes this process's
// threads. Destroy it on the thread that took it.
class NamedLock {
 public:
  virtual ~NamedLock() = default;
};

// What a subscriber is called with: a message another process (or this one) sent
// with Notify, or "" when messages may have been missed (the listening connection
// was lost and is back): the subscriber must then assume anything changed.
using Subscriber = std::function<void(std::string_view message)>;

class Db {
 public:
  virtual ~Db() = default;

  // Opens (creating if absent) an SQLite database file in WAL mode with
  // synchronous=FULL and foreign keys on. IOError / PermissionDenied / Corruption
  // when the file cannot be opened or is not a database.
  static core::Result<std::unique_ptr<Db>> OpenSqlite(const std::string& path,
                                                      const DbOptions& options = {});
  // Connects to PostgreSQL (`conninfo`: a libpq connection string or
  // postgresql:// URI). A write transaction holds the catalog's write lock (an
  // advisory lock shared by every process on the database) from BEGIN; reads see one
  // snapshot. IOError when the server cannot be reached, PermissionDenied when it
  // refuses the credentials; the message names the database, never its password.
  static core::Result<std::unique_ptr<Db>> OpenPostgres(const std::string& conninfo,
                                                        const DbOptions& options = {});

  virtual Dialect dialect() const = 0;
  // "sqlite:/path/catalog.db", for messages (never includes a password).
  virtual std::string Describe() const = 0;

  enum class Mode { kRead, kWrite };
  // Runs `fn` in one transaction: commits when it returns OK, rolls back when it
  // returns an error (which is returned). A lock conflict or serialization failure
  // anywhere in it (Unavailable) rolls back and runs `fn` again, with backoff, up to
  // the busy timeout. kWrite takes the write lock at BEGIN (no upgrade deadlocks).
  virtual core::Status Transaction(const std::function<core::Status(Tx&)>& fn,
                                   Mode mode = Mode::kWrite) = 0;

  // Whether several processes may share this catalog (PostgreSQL): then caches must
  // be invalidated through Notify, and background work is leased.
  bool shared() const { return dialect() == Dialect::kPostgres; }

  // Sends `message` (at most 7000 bytes, no NUL) to every subscriber of every process
  // on this database, this process's included (those synchronously, before it
  // returns; others as soon as their listener reads it). Call it after the change it
  // announces has committed. The local delivery happens even when sending fails
  // (IOError: the database is unreachable; other processes then get "" once their
  // listener reconnects).
  virtual core::Status Notify(std::string_view message) = 0;
  // Adds a subscriber (see Subscriber). It is called on the listener's thread (on
  // PostgreSQL) or on Notify's caller's thread (this process's messages), so it must
  // be quick and thread-safe. The first call on PostgreSQL starts the listener and
  // returns once it listens (or failed once: it then keeps reconnecting).
  virtual void Subscribe(Subscriber fn);
  // Takes the lock `name`, waiting for it as long as it takes. IOError when the
  // database is unreachable.
  virtual core::Result<std::unique_ptr<NamedLock>> Lock(std::string_view name) = 0;

  // Read-only convenience wrappers around Transaction(kRead).
  core::Result<Rows> Query(std::string_view sql, const Params& params = {});
  core::Result<Row> QueryRow(std::string_view sql, const Params& params = {});
  core::Result<std::int64_t> QueryInt(std::string_view sql, const Params& params = {});

 protected:
  // Calls every subscriber with `message`.
  void Deliver(std::string_view message);
  // InvalidArgument for a message Notify cannot carry.
  static core::Status CheckMessage(std::string_view message);

 private:
  std::mutex subscribers_mu_;
  std::vector<Subscriber> subscribers_;  // under subscribers_mu_
};

}  // namespace depot::catalog
