#include "catalog/outbox.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/testing.h"

namespace depot::catalog {
namespace {

std::unique_ptr<Db> OpenWith(const testing::TempDir& dir, const std::string& script) {
  auto db = Db::OpenSqlite(dir.Sub("state.db"));
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  EXPECT_TRUE((*db)->Transaction([&](Tx& tx) { return tx.ExecScript(script); }).ok());
  return std::move(*db);
}

TEST(OutboxTest, TheDefinitionPassesItsOwnCheck) {
  testing::TempDir dir;
  auto db = OpenWith(dir, OutboxTablesSql());
  EXPECT_TRUE(CheckOutboxSchema(db.get()).ok()) << CheckOutboxSchema(db.get()).ToString();
}

TEST(OutboxTest, ADriftedTableIsNamed) {
  testing::TempDir dir;
  // The DP's first migration, before the deployment column was added.
  auto db = OpenWith(
      dir,
      "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
      "CREATE TABLE outbox (seq BIGINT PRIMARY KEY, code BIGINT NOT NULL, time_ms BIGINT NOT NULL, "
      "package TEXT, version BIGINT, params TEXT NOT NULL);");
  core::Status s = CheckOutboxSchema(db.get());
  ASSERT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("table outbox"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("deployment BIGINT"), std::string::npos) << s.message();
  // The column added by a later migration, as the DP's migration 2 does: the same
  // table (its columns in another order, which no statement depends on).
  ASSERT_TRUE(db->Transaction([](Tx& tx) {
                  return tx.ExecScript("ALTER TABLE outbox ADD COLUMN deployment BIGINT;");
                }).ok());
  EXPECT_TRUE(CheckOutboxSchema(db.get()).ok()) << CheckOutboxSchema(db.get()).ToString();
  // A type that differs is drift too.
  ASSERT_TRUE(db->Transaction([](Tx& tx) {
                  return tx.ExecScript(
                      "DROP TABLE meta; CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB);");
                }).ok());
  core::Status meta = CheckOutboxSchema(db.get());
  ASSERT_TRUE(meta.IsCorruption());
  EXPECT_NE(meta.message().find("table meta"), std::string::npos) << meta.message();
}

TEST(OutboxTest, MessagesAreDeliveredInOrderAndAcknowledged) {
  testing::TempDir dir;
  auto db = OpenWith(dir, OutboxTablesSql());
  for (int code : {3001, 3002, 3003}) {
    OutboxMessage m{code, 1000 + code, code == 3002 ? "tools" : "", code == 3002 ? 3 : 0,
                    0,    {{"k", "v"}}};
    ASSERT_TRUE(db->Transaction([&](Tx& tx) { return AppendOutbox(tx, m).status(); }).ok());
  }
  EXPECT_EQ(*OutboxDepth(db.get()), 3);
  auto batch = ReadOutbox(db.get(), 2);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->count, 2u);
  auto j = nlohmann::json::parse(batch->json);
  EXPECT_EQ(j[0]["code"], 3001);
  EXPECT_FALSE(j[0].contains("package"));
  EXPECT_EQ(j[1]["package"], "tools");
  EXPECT_EQ(j[1]["version"], 3);
  EXPECT_EQ(j[1]["params"]["k"], "v");
  ASSERT_TRUE(AckOutbox(db.get(), batch->last_seq).ok());
  EXPECT_EQ(*OutboxDepth(db.get()), 1);
  auto rest = ReadOutbox(db.get(), 10);
  EXPECT_EQ(nlohmann::json::parse(rest->json)[0]["code"], 3003);
}

}  // namespace
}  // namespace depot::catalog
