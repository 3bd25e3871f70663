#include "catalog/test_db.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>

#include "core/env.h"

namespace depot::catalog {

using core::Status;

std::vector<Dialect> TestDialects() { return {Dialect::kSqlite, Dialect::kPostgres}; }

std::string DialectName(Dialect d) { return d == Dialect::kSqlite ? "sqlite" : "postgres"; }

void PrintTo(Dialect d, std::ostream* os) { *os << DialectName(d); }

std::string DialectTestName(const ::testing::TestParamInfo<Dialect>& info) {
  return DialectName(info.param);
}

namespace {

core::Result<std::string> ServerConninfo() {
  const char* file = std::getenv("DEPOT_TEST_PG");
  if (file == nullptr || *file == '\0') {
    return Status::InvalidArgument(
        "DEPOT_TEST_PG is not set: run this test through ctest, which starts PostgreSQL for "
        "it (scripts/pg-temp.sh start DIR, then DEPOT_TEST_PG=DIR/conninfo)");
  }
  std::ifstream in(file);
  std::string line;
  if (!std::getline(in, line) || line.empty()) {
    return Status::InvalidArgument(std::string("no connection string in ") + file +
                                   " (did the postgres_start test fail?)");
  }
  return line;
}

}  // namespace

core::Result<std::string> NewTestDatabase(Dialect d, const std::string& dir) {
  static std::atomic<int> counter{0};
  const std::string name =
      "depot_t" + std::to_string(::getpid()) + "_" + std::to_string(counter.fetch_add(1));
  if (d == Dialect::kSqlite) return core::JoinPath(dir, name + ".db");
  DEPOT_ASSIGN_OR_RETURN(std::string server, ServerConninfo());
  PGconn* conn = PQconnectdb(server.c_str());
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PGresult* r = PQexec(conn, ("CREATE DATABASE " + name).c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK) error = PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(conn);
  if (!error.empty()) return Status::IOError("test database " + name + ": " + error);
  return server + " dbname=" + name;
}

core::Result<std::unique_ptr<Db>> OpenTestDatabase(Dialect d, const std::string& where,
                                                   const DbOptions& options) {
  return d == Dialect::kSqlite ? Db::OpenSqlite(where, options) : Db::OpenPostgres(where, options);
}

}  // namespace depot::catalog
