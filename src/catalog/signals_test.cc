// Db::Notify / Subscribe and Db::Lock on both backends: what several site processes on
// one catalog use to invalidate each other's caches and to take turns (docs/scale-out.md).
// Two handles on one PostgreSQL database stand for two processes (each has its own
// connections, listener and origin).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "catalog/db.h"
#include "catalog/test_db.h"
#include "core/testing.h"

namespace depot::catalog {
namespace {

// What a subscriber received, with a wait for the next one.
class Inbox {
 public:
  Subscriber Fn() {
    return [this](std::string_view m) {
      std::lock_guard<std::mutex> lock(mu_);
      got_.emplace_back(m);
      cv_.notify_all();
    };
  }
  // Waits (on the event, with a generous bound against a hang) until `n` messages came.
  std::vector<std::string> WaitFor(std::size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(30), [&] { return got_.size() >= n; });
    return got_;
  }
  std::vector<std::string> Got() {
    std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> got_;
};

// Two handles on one new database of `dialect`.
class Handles {
 public:
  explicit Handles(Dialect dialect) : dialect_(dialect) {
    auto where = NewTestDatabase(dialect, dir_.path());
    EXPECT_TRUE(where.ok()) << where.status().ToString();
    if (!where.ok()) return;
    where_ = *where;
    a_ = Open();
    b_ = Open();
  }
  std::unique_ptr<Db> Open() {
    auto db = OpenTestDatabase(dialect_, where_);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    return db.ok() ? std::move(*db) : nullptr;
  }

 protected:
  Dialect dialect_;
  depot::testing::TempDir dir_;
  std::string where_;
  std::unique_ptr<Db> a_, b_;
};

class SignalsTest : public ::testing::TestWithParam<Dialect>, public Handles {
 protected:
  SignalsTest() : Handles(GetParam()) {}
  void SetUp() override { ASSERT_TRUE(a_ && b_); }
};

// What only PostgreSQL has: other processes, and a listener's connection.
class PgSignalsTest : public ::testing::Test, public Handles {
 protected:
  PgSignalsTest() : Handles(Dialect::kPostgres) {}
  void SetUp() override { ASSERT_TRUE(a_ && b_); }
};

INSTANTIATE_TEST_SUITE_P(Backends, SignalsTest, ::testing::ValuesIn(TestDialects()),
                         DialectTestName);

TEST_P(SignalsTest, ANotificationReachesThisProcessAtOnceAndOnlyOnce) {
  Inbox inbox;
  a_->Subscribe(inbox.Fn());
  ASSERT_TRUE(a_->Notify("changed").ok());
  EXPECT_EQ(inbox.Got(), std::vector<std::string>{"changed"});  // synchronously
  // Its own message coming back through the listener is skipped: a second message
  // from elsewhere arrives next, not a copy of the first.
  if (GetParam() == Dialect::kPostgres) {
    ASSERT_TRUE(b_->Notify("tokens").ok());
    EXPECT_EQ(inbox.WaitFor(2), (std::vector<std::string>{"changed", "tokens"}));
  }
}

TEST_F(PgSignalsTest, ANotificationReachesEveryOtherProcessOnTheDatabase) {
  Inbox inbox;
  b_->Subscribe(inbox.Fn());
  ASSERT_TRUE(a_->Notify("chunks:ab|cd").ok());
  ASSERT_TRUE(a_->Notify("changed").ok());
  EXPECT_EQ(inbox.WaitFor(2), (std::vector<std::string>{"chunks:ab|cd", "changed"}));
}

TEST_P(SignalsTest, AMessageNotificationsCannotCarryIsRefused) {
  Inbox inbox;
  a_->Subscribe(inbox.Fn());
  EXPECT_TRUE(a_->Notify("").IsInvalidArgument());
  EXPECT_TRUE(a_->Notify(std::string(7001, 'x')).IsInvalidArgument());
  EXPECT_TRUE(a_->Notify(std::string("a\0b", 3)).IsInvalidArgument());
  EXPECT_TRUE(a_->Notify(std::string(7000, 'x')).ok());
  EXPECT_EQ(inbox.Got().size(), 1u);
}

TEST_F(PgSignalsTest, AListenerThatLostItsConnectionSaysSoAndListensAgain) {
  Inbox inbox;
  b_->Subscribe(inbox.Fn());
  // The server ends the listener's session, as a restart or a network cut would.
  ASSERT_TRUE(a_->Transaction([](Tx& tx) {
                  return tx
                      .Query(
                          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                          "datname = current_database() AND query LIKE 'LISTEN%'")
                      .status();
                }).ok());
  // "" once it listens again: what was sent meanwhile may be lost.
  EXPECT_EQ(inbox.WaitFor(1), std::vector<std::string>{""});
  ASSERT_TRUE(a_->Notify("changed").ok());
  EXPECT_EQ(inbox.WaitFor(2), (std::vector<std::string>{"", "changed"}));
}

TEST_P(SignalsTest, ANamedLockExcludesOtherHoldersUntilReleased) {
  // On SQLite the two holders are threads of one process sharing its handle.
  Db* second = GetParam() == Dialect::kSqlite ? a_.get() : b_.get();
  auto held = a_->Lock("signer");
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  auto other = a_->Lock("refresh");  // another name is another lock
  ASSERT_TRUE(other.ok());
  other->reset();
  std::atomic<bool> taken{false};
  std::mutex mu;
  std::condition_variable cv;
  bool waiting = false;
  std::thread t([&] {
    {
      std::lock_guard<std::mutex> lock(mu);
      waiting = true;
    }
    cv.notify_all();
    auto l = second->Lock("signer");
    EXPECT_TRUE(l.ok());
    taken = true;
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return waiting; });
  }
  if (GetParam() == Dialect::kPostgres) {
    // The second holder is queued at the server (pg_locks shows it not granted).
    for (int i = 0; i < 3000; ++i) {
      auto n =
          a_->QueryInt("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted");
      ASSERT_TRUE(n.ok());
      if (*n == 1) break;
      std::this_thread::yield();
    }
  }
  EXPECT_FALSE(taken.load());
  held->reset();
  t.join();
  EXPECT_TRUE(taken.load());
}

}  // namespace
}  // namespace depot::catalog
