#include "catalog/migrate.h"

#include <gtest/gtest.h>

#include <thread>

#include "catalog/schema.h"
#include "catalog/test_db.h"
#include "core/sha256.h"
#include "core/testing.h"

namespace depot::catalog {
namespace {

using core::Status;

// Every test that touches a database runs on SQLite and on PostgreSQL.
class MigrateTest : public ::testing::TestWithParam<Dialect> {
 protected:
  void SetUp() override {
    auto where = NewTestDatabase(GetParam(), dir_.path());
    ASSERT_TRUE(where.ok()) << where.status().ToString();
    where_ = *where;
  }
  std::unique_ptr<Db> OpenDb() {
    auto db = OpenTestDatabase(GetParam(), where_);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    return db.ok() ? std::move(*db) : nullptr;
  }
  bool TableExists(Db* db, const std::string& table) {
    auto n = db->QueryInt(GetParam() == Dialect::kSqlite
                              ? "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name=?"
                              : "SELECT COUNT(*) FROM information_schema.tables WHERE "
                                "table_schema = current_schema() AND table_name = ?",
                          {table});
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() && *n == 1;
  }
  testing::TempDir dir_;
  std::string where_;
};

INSTANTIATE_TEST_SUITE_P(Backends, MigrateTest, ::testing::ValuesIn(TestDialects()),
                         DialectTestName);

// Migrations that have shipped must never change: a changed script would leave
// databases migrated before the change with a different schema than new ones. Add a
// migration instead, and append its hash here.
TEST(MigrateScriptsTest, ShippedMigrationsAreImmutable) {
  const char* kShipped[] = {
      "8be7d3b4a6d284aea20ef3990dc6d246dd375717c476a69ae8a52be7d93084d6",
      "f0ea5275bf603abbc9fb66fbfe5b436808eddde6e8e598b613b3a72c8e21c4e4",
      "a1abaab9b31ff9d2a8361916b421f355c13a3a4fe221bf3724e4470c04e3b959",
      "c9cc3e27e6d708de8726c30b449763c4addcc8de47866f4e17f9714c88c2bee0",
      "df1bf189f16f52477571210691d275448275c79aa82045f5488db977034df3f2",
      "ffd4cbf0e123d27ae31064f9100c44b2281dcacfb19e6e602ee20e40c9cfbd90",
  };
  const auto& migrations = SiteMigrations();
  ASSERT_GE(migrations.size(), std::size(kShipped));
  for (std::size_t i = 0; i < std::size(kShipped); ++i) {
    EXPECT_EQ(core::Sha256::HashHex(migrations[i].sql), kShipped[i])
        << "migration " << migrations[i].version << " (" << migrations[i].name
        << ") was edited after it shipped; add a new migration instead";
  }
}

TEST_P(MigrateTest, FreshDatabaseGetsEveryMigrationOnce) {
  auto db = OpenDb();
  EXPECT_EQ(*SchemaVersion(db.get()), 0);
  ASSERT_TRUE(Migrate(db.get(), SiteMigrations()).ok());
  EXPECT_EQ(*SchemaVersion(db.get()), static_cast<int>(SiteMigrations().size()));
  // Every table the catalog relies on exists.
  for (const char* table :
       {"meta", "tokens", "packages", "versions", "dps", "dp_groups", "dp_boundaries",
        "distributions", "dp_records", "clients", "collections", "collection_members",
        "deployments", "client_deployments", "messages"}) {
    EXPECT_TRUE(TableExists(db.get(), table)) << table;
  }
  // Running again changes nothing.
  ASSERT_TRUE(Migrate(db.get(), SiteMigrations()).ok());
  EXPECT_EQ(*db->QueryInt("SELECT COUNT(*) FROM schema_migrations"),
            static_cast<std::int64_t>(SiteMigrations().size()));
}

TEST_P(MigrateTest, UpgradesStepByStepKeepingData) {
  auto db = OpenDb();
  std::vector<Migration> v1 = {
      {1, "one", "CREATE TABLE a (id {{ID}}, name TEXT NOT NULL)"},
  };
  ASSERT_TRUE(Migrate(db.get(), v1).ok());
  ASSERT_TRUE(db->Transaction([](Tx& tx) {
                  return tx.Exec("INSERT INTO a (name) VALUES ('kept')").status();
                }).ok());
  std::vector<Migration> v2 = v1;
  v2.push_back({2, "two", "ALTER TABLE a ADD COLUMN size BIGINT NOT NULL DEFAULT 0"});
  ASSERT_TRUE(Migrate(db.get(), v2).ok());
  EXPECT_EQ(*SchemaVersion(db.get()), 2);
  auto row = db->QueryRow("SELECT name, size FROM a");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->Text(0), "kept");
  EXPECT_EQ(row->Int(1), 0);
}

TEST_P(MigrateTest, FailingMigrationLeavesTheSchemaAtTheLastWholeVersion) {
  auto db = OpenDb();
  std::vector<Migration> ms = {
      {1, "one", "CREATE TABLE a (id {{ID}})"},
      {2, "broken", "CREATE TABLE b (id {{ID}}); CREATE TABLE a (x TEXT)"},
  };
  Status s = Migrate(db.get(), ms);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("migration 2 (broken)"), std::string::npos) << s.ToString();
  EXPECT_EQ(*SchemaVersion(db.get()), 1);
  EXPECT_FALSE(TableExists(db.get(), "b"));
}

TEST_P(MigrateTest, RefusesADatabaseNewerThanTheBinary) {
  auto db = OpenDb();
  std::vector<Migration> ms = {{1, "one", "CREATE TABLE a (id {{ID}})"},
                               {2, "two", "CREATE TABLE b (id {{ID}})"}};
  ASSERT_TRUE(Migrate(db.get(), ms).ok());
  ms.pop_back();
  Status s = Migrate(db.get(), ms);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("newer than this depot"), std::string::npos);
}

TEST_P(MigrateTest, GapsInNumberingAreRejected) {
  auto db = OpenDb();
  std::vector<Migration> ms = {{1, "one", "SELECT 1"}, {3, "three", "SELECT 1"}};
  EXPECT_TRUE(Migrate(db.get(), ms).IsInvalidArgument());
}

TEST_P(MigrateTest, ConcurrentMigratorsBothSucceed) {
  auto a = OpenDb();
  auto b = OpenDb();
  Status sa, sb;
  std::thread t1([&] { sa = Migrate(a.get(), SiteMigrations()); });
  std::thread t2([&] { sb = Migrate(b.get(), SiteMigrations()); });
  t1.join();
  t2.join();
  EXPECT_TRUE(sa.ok()) << sa.ToString();
  EXPECT_TRUE(sb.ok()) << sb.ToString();
  EXPECT_EQ(*SchemaVersion(a.get()), static_cast<int>(SiteMigrations().size()));
}

TEST(MigrateScriptsTest, ExpandSqlPerDialect) {
  EXPECT_EQ(ExpandSql("id {{ID}}", Dialect::kSqlite), "id INTEGER PRIMARY KEY");
  EXPECT_EQ(ExpandSql("id {{ID}}", Dialect::kPostgres),
            "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY");
}

}  // namespace
}  // namespace depot::catalog
