// Connections to PostgreSQL and the one conversion of its errors (internal to the
// catalog component; see postgres_conn.h).
#include "catalog/postgres_conn.h"

namespace depot::catalog {

using core::Status;

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

core::Result<std::unique_ptr<Conn>> PgConnect(const std::string& conninfo,
                                              const std::string& described) {
  auto conn = std::make_unique<Conn>();
  conn->pg = PQconnectdb(conninfo.c_str());
  if (conn->pg == nullptr) return Status::IOError("connect to " + described + ": out of memory");
  if (PQstatus(conn->pg) != CONNECTION_OK) {
    std::string why = PQerrorMessage(conn->pg);
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    const bool auth = why.find("password") != std::string::npos ||
                      why.find("authentication") != std::string::npos ||
                      why.find("role") != std::string::npos;
    std::string msg = "connect to " + described + ": " + why;
    if (auth) return Status::PermissionDenied(msg + " (check the user and password in --db)");
    return Status::IOError(msg + " (is PostgreSQL running and the address in --db right?)");
  }
  PQsetNoticeProcessor(
      conn->pg, [](void*, const char*) {}, nullptr);
  PgResult res(PQexec(conn->pg, "SET client_min_messages = warning; SET TIME ZONE 'UTC'"));
  if (PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
    return PgStatus(res.get(), conn->pg, "set up a connection to " + described);
  }
  return conn;
}

}  // namespace depot::catalog
