// Internal to the catalog component: a libpq connection, its results, and the one
// conversion of PostgreSQL errors to Status (PgStatus). Used by the backend
// (postgres_db.cc) and its notification listener (postgres_listener.cc).
//
// Thread safety: a Conn belongs to one thread at a time.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace depot::catalog {

// PostgreSQL's error (SQLSTATE classes, Appendix A of its manual) as a Status:
// Unavailable for busy/serialization (retried), IOError for a lost connection,
// PermissionDenied, Corruption, InvalidArgument for the rest.
core::Status PgStatus(const PGresult* res, PGconn* conn, std::string_view what);

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

// "postgresql://user@host:port/db" from a connection string, without its password.
std::string DescribeConninfo(const std::string& conninfo);

// A new connection, set up for the catalog (UTC, quiet notices). IOError when the
// server cannot be reached, PermissionDenied when it refuses the credentials; the
// message names `described`, never the password.
core::Result<std::unique_ptr<Conn>> PgConnect(const std::string& conninfo,
                                              const std::string& described);

}  // namespace depot::catalog
