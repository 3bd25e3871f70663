#include "catalog/db.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "catalog/migrate.h"
#include "catalog/test_db.h"
#include "core/testing.h"

namespace depot::catalog {
namespace {

using core::Status;

// Every test runs on SQLite and on PostgreSQL (catalog/test_db.h).
class DbTest : public ::testing::TestWithParam<Dialect> {
 protected:
  void SetUp() override {
    auto where = NewTestDatabase(GetParam(), dir_.path());
    ASSERT_TRUE(where.ok()) << where.status().ToString();
    where_ = *where;
    auto db = OpenTestDatabase(GetParam(), where_);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(*db);
    ASSERT_TRUE(db_->Transaction([](Tx& tx) {
                     return tx.ExecScript(
                         ExpandSql("CREATE TABLE t (id {{ID}}, name TEXT NOT NULL UNIQUE, "
                                   "n BIGINT, x DOUBLE PRECISION)",
                                   tx.dialect()));
                   })
                    .ok());
  }
  // Adds one to a counter row `per_thread` times from one thread per entry of `dbs`
  // (read, then write: a lost update shows in the total); returns the failures.
  int CountConcurrently(const std::vector<Db*>& dbs, int per_thread) {
    EXPECT_TRUE(db_->Transaction([](Tx& tx) {
                     return tx.Exec("INSERT INTO t (name, n) VALUES ('counter', 0)").status();
                   })
                    .ok());
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (Db* db : dbs) {
      threads.emplace_back([&, db] {
        for (int i = 0; i < per_thread; ++i) {
          Status s = db->Transaction([](Tx& tx) -> Status {
            DEPOT_ASSIGN_OR_RETURN(std::int64_t n,
                                   tx.QueryInt("SELECT n FROM t WHERE name = 'counter'"));
            return tx.Exec("UPDATE t SET n = ? WHERE name = 'counter'", {n + 1}).status();
          });
          if (!s.ok()) ++failures;
        }
      });
    }
    for (auto& t : threads) t.join();
    return failures.load();
  }

  testing::TempDir dir_;
  std::string where_;
  std::unique_ptr<Db> db_;
};

INSTANTIATE_TEST_SUITE_P(Backends, DbTest, ::testing::ValuesIn(TestDialects()), DialectTestName);

TEST_P(DbTest, BindsAndReadsEveryType) {
  ASSERT_TRUE(db_->Transaction([](Tx& tx) -> Status {
                   auto r = tx.Query("INSERT INTO t (name, n, x) VALUES (?, ?, ?) RETURNING id",
                                     {"a", std::int64_t{1} << 40, 2.5});
                   if (!r.ok()) return r.status();
                   EXPECT_EQ(r->size(), 1u);
                   return tx
                       .Exec("INSERT INTO t (name, n, x) VALUES (?, ?, ?)",
                             {std::string("b"), nullptr, std::optional<double>()})
                       .status();
                 })
                  .ok());
  auto rows = db_->Query("SELECT name, n, x FROM t ORDER BY name");
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].Text(0), "a");
  EXPECT_EQ((*rows)[0].Int(1), std::int64_t{1} << 40);
  EXPECT_DOUBLE_EQ((*rows)[0].Double(2), 2.5);
  EXPECT_TRUE((*rows)[1].IsNull(1));
  EXPECT_FALSE((*rows)[1].OptInt(1).has_value());
  EXPECT_TRUE((*rows)[1].IsNull(2));
}

TEST_P(DbTest, ErrorRollsBackEverythingInTheTransaction) {
  Status s = db_->Transaction([](Tx& tx) -> Status {
    DEPOT_RETURN_IF_ERROR(tx.Exec("INSERT INTO t (name) VALUES (?)", {"x"}).status());
    return Status::InvalidArgument("changed my mind");
  });
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_EQ(*db_->QueryInt("SELECT COUNT(*) FROM t"), 0);
}

TEST_P(DbTest, ConstraintViolationIsInvalidArgumentNamingIt) {
  ASSERT_TRUE(db_->Transaction([](Tx& tx) {
                   return tx.Exec("INSERT INTO t (name) VALUES (?)", {"x"}).status();
                 })
                  .ok());
  Status s = db_->Transaction(
      [](Tx& tx) { return tx.Exec("INSERT INTO t (name) VALUES (?)", {"x"}).status(); });
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  std::string lower = s.message();
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_NE(lower.find("unique"), std::string::npos) << s.ToString();
}

TEST_P(DbTest, WrongParameterCountIsAnError) {
  Status s = db_->Transaction(
      [](Tx& tx) { return tx.Exec("INSERT INTO t (name) VALUES (?)", {}).status(); });
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
}

TEST_P(DbTest, ConcurrentWritersNeverLoseAnUpdate) {
  EXPECT_EQ(CountConcurrently({db_.get(), db_.get(), db_.get(), db_.get()}, 50), 0);
  EXPECT_EQ(*db_->QueryInt("SELECT n FROM t WHERE name = 'counter'"), 200);
}

TEST_P(DbTest, SecondProcessStyleConnectionSeesCommittedData) {
  ASSERT_TRUE(db_->Transaction([](Tx& tx) {
                   return tx.Exec("INSERT INTO t (name) VALUES ('seen')").status();
                 })
                  .ok());
  auto other = OpenTestDatabase(GetParam(), where_);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*(*other)->QueryInt("SELECT COUNT(*) FROM t WHERE name = 'seen'"), 1);
}

// Two handles are two processes' catalogs: the write lock is the database's, not a
// handle's, so read-modify-write transactions through both never lose an update.
TEST_P(DbTest, WritersThroughTwoHandlesNeverLoseAnUpdate) {
  auto other = OpenTestDatabase(GetParam(), where_);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(CountConcurrently({db_.get(), other->get()}, 100), 0);
  EXPECT_EQ(*db_->QueryInt("SELECT n FROM t WHERE name = 'counter'"), 200);
}

TEST_P(DbTest, SumsAndCountsAreIntegersAndAQuestionMarkInALiteralIsText) {
  ASSERT_TRUE(db_->Transaction([](Tx& tx) {
                   return tx
                       .Exec("INSERT INTO t (name, n) VALUES ('what?', ?), ('b', ?)",
                             {std::int64_t{1} << 40, 2})
                       .status();
                 })
                  .ok());
  auto row = db_->QueryRow("SELECT SUM(n), COUNT(*), MAX(name) FROM t WHERE name != ?", {"zz?"});
  ASSERT_TRUE(row.ok()) << row.status().ToString();
  EXPECT_EQ(row->Int(0), (std::int64_t{1} << 40) + 2);
  EXPECT_EQ(row->Int(1), 2);
  EXPECT_EQ(row->Text(2), "what?");
}

TEST(DbOpenTest, AnUnreachablePostgresIsIOErrorNamingItWithoutThePassword) {
  auto db = Db::OpenPostgres("postgresql://depot:s3cret@127.0.0.1:1/catalog?connect_timeout=5");
  ASSERT_FALSE(db.ok());
  EXPECT_TRUE(db.status().IsIOError()) << db.status().ToString();
  EXPECT_NE(db.status().message().find("postgresql://depot@127.0.0.1:1/catalog"), std::string::npos)
      << db.status().ToString();
  EXPECT_EQ(db.status().message().find("s3cret"), std::string::npos);
}

TEST(DbOpenTest, NotADatabaseIsCorruptionNamingTheFile) {
  testing::TempDir dir;
  testing::WriteFileOrDie(dir.Sub("junk.db"), std::string(8192, 'x'));
  auto db = Db::OpenSqlite(dir.Sub("junk.db"));
  ASSERT_FALSE(db.ok());
  EXPECT_TRUE(db.status().IsCorruption()) << db.status().ToString();
  EXPECT_NE(db.status().message().find("junk.db"), std::string::npos);
}

TEST(DbOpenTest, MissingDirectoryFails) {
  auto db = Db::OpenSqlite("/nonexistent-dir/x/catalog.db");
  ASSERT_FALSE(db.ok());
  EXPECT_TRUE(db.status().IsPermissionDenied()) << db.status().ToString();
}

}  // namespace
}  // namespace depot::catalog
