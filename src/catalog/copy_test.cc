// Copying a catalog from SQLite to PostgreSQL (what `depot site migrate-db` does with
// the site's), and the per-table digest that verifies it.
#include "catalog/copy.h"

#include <gtest/gtest.h>

#include "catalog/migrate.h"
#include "catalog/schema.h"
#include "catalog/test_db.h"
#include "core/testing.h"

namespace depot::catalog {
namespace {

class CopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (Dialect d : {Dialect::kSqlite, Dialect::kPostgres}) {
      auto where = NewTestDatabase(d, dir_.path());
      ASSERT_TRUE(where.ok()) << where.status().ToString();
      auto db = OpenTestDatabase(d, *where);
      ASSERT_TRUE(db.ok()) << db.status().ToString();
      ASSERT_TRUE(Migrate(db->get(), SiteMigrations()).ok());
      (d == Dialect::kSqlite ? sqlite_ : pg_) = std::move(*db);
    }
    // Rows of several types, a NULL, text that needs quoting, ids with a gap.
    ASSERT_TRUE(sqlite_
                    ->Transaction([](Tx& tx) -> core::Status {
                      for (const char* name : {"tools", "it's \"quoted\"", "ünïcode"}) {
                        DEPOT_RETURN_IF_ERROR(
                            tx.Exec("INSERT INTO packages (name, uid, description, created_at, "
                                    "deleted_at) VALUES (?, ?, ?, ?, ?)",
                                    {name, std::string("u-") + name, "line\nbreak", 1234, nullptr})
                                .status());
                      }
                      return tx.Exec("DELETE FROM packages WHERE name = 'tools'").status();
                    })
                    .ok());
  }
  depot::testing::TempDir dir_;
  std::unique_ptr<Db> sqlite_, pg_;
};

TEST_F(CopyTest, EveryRowArrivesTheDigestsAgreeAndNewIdsContinueAfterTheCopied) {
  auto tables = ListTables(sqlite_.get());
  ASSERT_TRUE(tables.ok());
  EXPECT_NE(std::find(tables->begin(), tables->end(), "packages"), tables->end());
  auto copied = CopyTables(sqlite_.get(), pg_.get(), *tables);
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(copied->at("packages"), 2);
  auto a = DigestTables(sqlite_.get(), *tables);
  auto b = DigestTables(pg_.get(), *tables);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  // The meta rows the migrations wrote on the target were replaced, not doubled.
  EXPECT_EQ(*pg_->QueryInt("SELECT COUNT(*) FROM meta"),
            *sqlite_->QueryInt("SELECT COUNT(*) FROM meta"));
  // The next package gets an id past every copied one.
  auto max_id = sqlite_->QueryInt("SELECT MAX(id) FROM packages");
  ASSERT_TRUE(pg_->Transaction([](Tx& tx) {
                   return tx
                       .Exec("INSERT INTO packages (name, uid, created_at) VALUES ('new', 'u', 1)")
                       .status();
                 })
                  .ok());
  EXPECT_GT(*pg_->QueryInt("SELECT id FROM packages WHERE name = 'new'"), *max_id);
}

TEST_F(CopyTest, ADigestTellsARowThatDiffers) {
  auto tables = ListTables(sqlite_.get());
  ASSERT_TRUE(CopyTables(sqlite_.get(), pg_.get(), *tables).ok());
  ASSERT_TRUE(
      pg_->Transaction([](Tx& tx) {
           return tx.Exec("UPDATE packages SET description = 'x' WHERE name = 'ünïcode'").status();
         })
          .ok());
  auto a = DigestTables(sqlite_.get(), {"packages"});
  auto b = DigestTables(pg_.get(), {"packages"});
  EXPECT_EQ(a->at("packages").rows, b->at("packages").rows);
  EXPECT_NE(a->at("packages").digest, b->at("packages").digest);
}

}  // namespace
}  // namespace depot::catalog
