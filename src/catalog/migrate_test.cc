#include "catalog/migrate.h"

#include <gtest/gtest.h>

#include <thread>

#include "catalog/schema.h"
#include "core/sha256.h"
#include "core/testing.h"

namespace depot::catalog {
namespace {

using core::Status;

std::unique_ptr<Db> OpenDb(const testing::TempDir& dir) {
  auto db = Db::OpenSqlite(dir.Sub("catalog.db"));
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  return std::move(*db);
}

// Migrations that have shipped must never change: a changed script would leave
// databases migrated before the change with a different schema than new ones. Add a
// migration instead, and append its hash here.
TEST(MigrateTest, ShippedMigrationsAreImmutable) {
  const char* kShipped[] = {
      "8be7d3b4a6d284aea20ef3990dc6d246dd375717c476a69ae8a52be7d93084d6",
      "f0ea5275bf603abbc9fb66fbfe5b436808eddde6e8e598b613b3a72c8e21c4e4",
  };
  const auto& migrations = SiteMigrations();
  ASSERT_GE(migrations.size(), std::size(kShipped));
  for (std::size_t i = 0; i < std::size(kShipped); ++i) {
    EXPECT_EQ(core::Sha256::HashHex(migrations[i].sql), kShipped[i])
        << "migration " << migrations[i].version << " (" << migrations[i].name
        << ") was edited after it shipped; add a new migration instead";
  }
}

TEST(MigrateTest, FreshDatabaseGetsEveryMigrationOnce) {
  testing::TempDir dir;
  auto db = OpenDb(dir);
  EXPECT_EQ(*SchemaVersion(db.get()), 0);
  ASSERT_TRUE(Migrate(db.get(), SiteMigrations()).ok());
  EXPECT_EQ(*SchemaVersion(db.get()), static_cast<int>(SiteMigrations().size()));
  // Every table the catalog relies on exists.
  for (const char* table : {"meta", "tokens", "packages", "versions", "dps", "dp_groups",
                            "dp_boundaries", "distributions", "dp_records", "clients",
                            "collections", "collection_members", "deployments",
                            "client_deployments", "messages"}) {
    auto n = db->QueryInt("SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name=?",
                          {table});
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, 1) << table;
  }
  // Running again changes nothing.
  ASSERT_TRUE(Migrate(db.get(), SiteMigrations()).ok());
  EXPECT_EQ(*db->QueryInt("SELECT COUNT(*) FROM schema_migrations"),
            static_cast<std::int64_t>(SiteMigrations().size()));
}

TEST(MigrateTest, UpgradesStepByStepKeepingData) {
  testing::TempDir dir;
  auto db = OpenDb(dir);
  std::vector<Migration> v1 = {
      {1, "one", "CREATE TABLE a (id {{ID}}, name TEXT NOT NULL)"},
  };
  ASSERT_TRUE(Migrate(db.get(), v1).ok());
  ASSERT_TRUE(db->Transaction([](Tx& tx) {
                   return tx.Exec("INSERT INTO a (name) VALUES ('kept')").status();
                 })
                  .ok());
  std::vector<Migration> v2 = v1;
  v2.push_back({2, "two", "ALTER TABLE a ADD COLUMN size BIGINT NOT NULL DEFAULT 0"});
  ASSERT_TRUE(Migrate(db.get(), v2).ok());
  EXPECT_EQ(*SchemaVersion(db.get()), 2);
  auto row = db->QueryRow("SELECT name, size FROM a");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->Text(0), "kept");
  EXPECT_EQ(row->Int(1), 0);
}

TEST(MigrateTest, FailingMigrationLeavesTheSchemaAtTheLastWholeVersion) {
  testing::TempDir dir;
  auto db = OpenDb(dir);
  std::vector<Migration> ms = {
      {1, "one", "CREATE TABLE a (id {{ID}})"},
      {2, "broken", "CREATE TABLE b (id {{ID}}); CREATE TABLE a (x TEXT)"},
  };
  Status s = Migrate(db.get(), ms);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("migration 2 (broken)"), std::string::npos) << s.ToString();
  EXPECT_EQ(*SchemaVersion(db.get()), 1);
  EXPECT_EQ(*db->QueryInt("SELECT COUNT(*) FROM sqlite_master WHERE name='b'"), 0);
}

TEST(MigrateTest, RefusesADatabaseNewerThanTheBinary) {
  testing::TempDir dir;
  auto db = OpenDb(dir);
  std::vector<Migration> ms = {{1, "one", "CREATE TABLE a (id {{ID}})"},
                               {2, "two", "CREATE TABLE b (id {{ID}})"}};
  ASSERT_TRUE(Migrate(db.get(), ms).ok());
  ms.pop_back();
  Status s = Migrate(db.get(), ms);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("newer than this depot"), std::string::npos);
}

TEST(MigrateTest, GapsInNumberingAreRejected) {
  testing::TempDir dir;
  auto db = OpenDb(dir);
  std::vector<Migration> ms = {{1, "one", "SELECT 1"}, {3, "three", "SELECT 1"}};
  EXPECT_TRUE(Migrate(db.get(), ms).IsInvalidArgument());
}

TEST(MigrateTest, ConcurrentMigratorsBothSucceed) {
  testing::TempDir dir;
  auto a = OpenDb(dir);
  auto b = OpenDb(dir);
  Status sa, sb;
  std::thread t1([&] { sa = Migrate(a.get(), SiteMigrations()); });
  std::thread t2([&] { sb = Migrate(b.get(), SiteMigrations()); });
  t1.join();
  t2.join();
  EXPECT_TRUE(sa.ok()) << sa.ToString();
  EXPECT_TRUE(sb.ok()) << sb.ToString();
  EXPECT_EQ(*SchemaVersion(a.get()), static_cast<int>(SiteMigrations().size()));
}

TEST(MigrateTest, ExpandSqlPerDialect) {
  EXPECT_EQ(ExpandSql("id {{ID}}", Dialect::kSqlite), "id INTEGER PRIMARY KEY");
  EXPECT_EQ(ExpandSql("id {{ID}}", Dialect::kPostgres),
            "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY");
}

}  // namespace
}  // namespace depot::catalog
