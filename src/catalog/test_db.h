// Test helper (linked into tests only): fresh catalog databases of each backend, so
// every test that touches a catalog runs on SQLite and on a real PostgreSQL.
//
// The PostgreSQL server is the one ctest starts for the `postgres` fixture
// (scripts/pg-temp.sh); DEPOT_TEST_PG names the file holding its connection string.
// Each call makes a new database on it, so tests never see each other's rows.
//
// Thread safety: any thread.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "catalog/db.h"

namespace depot::catalog {

// Both backends, for INSTANTIATE_TEST_SUITE_P.
std::vector<Dialect> TestDialects();
// "sqlite" / "postgres", for test names:
//   INSTANTIATE_TEST_SUITE_P(Backends, T, ValuesIn(TestDialects()), DialectTestName);
std::string DialectName(Dialect d);
std::string DialectTestName(const ::testing::TestParamInfo<Dialect>& info);
// How gtest prints a Dialect parameter (ctest's test names show it).
void PrintTo(Dialect d, std::ostream* os);

// Where a new, empty database is: an SQLite file under `dir`, or the connection string
// of a new PostgreSQL database. InvalidArgument (saying how to fix it) when
// DEPOT_TEST_PG is not set: run the test through ctest.
core::Result<std::string> NewTestDatabase(Dialect d, const std::string& dir);
// Opens what NewTestDatabase returned (again, for a second handle).
core::Result<std::unique_ptr<Db>> OpenTestDatabase(Dialect d, const std::string& where,
                                                   const DbOptions& options = {});

}  // namespace depot::catalog
